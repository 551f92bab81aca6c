"""The agency IT team's commands: ``intelshare node ...`` and ``intelshare worker``.

The top of the node: these start the server (:mod:`node.server`), open its
database to manage officers and webhooks, and run the notification
workers.
"""
