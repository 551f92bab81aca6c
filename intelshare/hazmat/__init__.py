"""Hazardous materials: the raw building blocks of the envelope.

Nothing in this package checks who is allowed to do what, which key is
trusted, or whether a header is well formed; every function here does
exactly one cryptographic step and trusts its caller for the rest. Using
these pieces directly is how one builds an envelope that verifies but means
something else. Use :mod:`intelshare.envelope` instead; this package exists
so that the envelope, its known-answer vectors, its attack tests and its
benchmark can all reach the same primitives.
"""
