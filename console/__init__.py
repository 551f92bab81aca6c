"""The officers' web console: a client of the agency node's gRPC API, nothing else.

Design, in short:

* **One node, the officer's own token.** The console is configured with one
  node (address, federation CA, agency id as TLS server name) and no
  credentials of its own. An officer signs in with their token; the console
  checks it with the node, keeps it server-side (:mod:`console.sessions`) and
  sends it with every call made for that officer, through the same client the
  officers' command line uses (``node.cli.case_client``). Whatever the node
  lets that officer see is what the console shows, nothing more; it never
  opens the node's database or imports node internals (an import-linter
  contract says so).
* **Pages rendered on the server.** Starlette routes (:mod:`console.views`)
  render Jinja2 templates with autoescaping; htmx (shipped in
  ``console/static``, no CDN) posts small forms and swaps fragments; every
  form also works as a plain form.
* **Live by Server-Sent Events.** ``/live/...`` streams follow the node's
  ``WatchAlerts`` / ``WatchCase`` streams; each message carries the node's
  event cursor as its id, so a browser that reconnects resumes exactly where
  it was (:mod:`console.views.live`).
* **Web security.** Session id only in an HttpOnly, SameSite=Strict cookie
  (Secure under TLS), a CSRF token on every form, a strict Content Security
  Policy (no inline script or style), no caching of pages (:mod:`console.web`,
  :mod:`console.app`).
"""
