"""The data plane: ingress and egress functions and their local runner. No Django here.

`broker.functions.shared` holds the pure rules the portal imports too (contract keys, payload
filters, SSRF, ARNs, secret decryption): one definition for both sides.
"""
