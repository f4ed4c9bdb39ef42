"""The HTTP surface: a small router and the route tables served by the webhook actor."""
