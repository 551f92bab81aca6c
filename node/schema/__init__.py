"""Wire forms of the record kinds: protobuf messages to and from the JSON
record that crosses agencies, and their validation.

Pure functions over ``intelshare.v1`` messages, with no I/O, so that both
sides use them: the record kinds on the server and the officers' commands
(:mod:`node.cli`) on the client.
"""
