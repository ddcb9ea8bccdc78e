"""The support console: an inbox for agents and leads, a CX dashboard for managers.

Server-rendered pages (Jinja2) served by the gateway under ``/console``, with a little
JavaScript for live updates, SLA countdowns and keyboard shortcuts. The console holds no
data of its own: every read and action goes to the alerts service through the gateway's
pooled upstream client, with the signed-in key's upstream headers, so whatever the alerts
service enforces for a key (scopes, team scoping) holds in the console too.
"""

from closeloop_gateway.console.routes import install_console

__all__ = ["install_console"]
