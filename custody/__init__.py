"""Custody: the security rules applied to stored rows, above storage and below the actors.

Which key may sign what (agent keys opened only under their wallet's envelope and a live
execution grant), the pre-trade guard every order passes, and webhook authentication against
the stored, bot-bound secret hashes. The cryptography itself is in `security`, the rows in
`storage`.
"""
