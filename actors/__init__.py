"""The daemon's actors: one module per kind of actor in the supervision tree."""
