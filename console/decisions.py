"""Answering what waits for this agency: the pattern the review and consent pages share.

*Pending reviews* (:mod:`console.views.reviews`) and *Consent requests*
(:mod:`console.views.consents`) list what the node holds for an officer's
answer, one card each, with two forms: yes, or no with a reason (the
``decision`` macro of ``_macros.html``). Both post the answer to the node and
treat its refusals alike, which is what this module holds:

* a reason the node finds wanting (``INVALID_ARGUMENT``) goes on the reason
  field, in the node's words (400);
* a refusal of this decision (``FAILED_PRECONDITION`` or a policy refusal)
  goes on the card as "Not done: …" with the reason code (409, or 403 when
  the node answers ``PERMISSION_DENIED``, as for an author approving their
  own alert);
* anything else (the officer's role may not answer at all, the node is
  unreachable, the session is no longer valid) is not about one card: it
  propagates to :func:`console.web.on_node_error`, which makes it the page.

After a refusal the page shows the card again if the node still lists the
item as waiting, and makes the refusal the page if it does not (another
officer decided meanwhile). The console decides nothing itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.requests import Request

from console import link, web
from intelshare import errors

_R = TypeVar("_R")

#: An id the node assigned (alert, consent request): all a page's "done" line repeats.
_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


@dataclass
class Answer(Generic[_R]):
    """The node's answer to a decision: ``done`` when it did it, ``refused`` otherwise."""

    done: _R | None = None
    refused: errors.IntelshareError | None = None
    #: What the card shows again after a refusal: the reason typed, and the node's words.
    card: dict[str, Any] = field(default_factory=dict)
    status: int = 200


async def post(fn: Callable[..., _R], *args: Any, reason: str = "") -> Answer[_R]:
    """Ask the node (``fn(*args)``); its refusals of this decision become an :class:`Answer`."""
    card: dict[str, Any] = {"reason": reason}
    try:
        done = await link.call(fn, *args)
    except errors.InvalidArgument as exc:
        card["reason_error"] = exc.message  # the node's words, e.g. "… needs a reason: …"
        return Answer(refused=exc, card=card, status=400)
    except (errors.PolicyRefused, errors.FailedPrecondition) as exc:
        card["refusal"] = web.refusal_text(exc)
        status = 403 if exc.grpc_code == "PERMISSION_DENIED" else 409
        return Answer(refused=exc, card=card, status=status)
    return Answer(done=done, card=card)


def done_line(request: Request, texts: Mapping[str, str], param: str, collection: str) -> str:
    """The line a page shows after a decision posted without htmx (from its redirect's query).

    ``?done=KEY&PARAM=ID`` says ``{collection}/{ID} {texts[KEY]}``; only an id
    is repeated, so a crafted link cannot make the page say anything else.
    """
    done = request.query_params.get("done", "")
    ident = request.query_params.get(param, "")
    if done in texts and _ID.fullmatch(ident) is not None:
        return f"{collection}/{ident} {texts[done]}"
    return ""


__all__ = ["Answer", "done_line", "post"]
