"""What both services are built with, and nothing of either: transport security, bearer tokens,
exclusive binding, request guards, safe text for messages and logs.

Both `store` and `authz` import this package; it imports neither of them.
"""
