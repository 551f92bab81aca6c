"""Translation of the exception hierarchy to and from gRPC statuses.

Servers never let a Python exception reach the wire as-is: an
:class:`~intelshare.errors.IntelshareError` becomes a status with a
``google.rpc.ErrorInfo`` (the UPPER_SNAKE reason, domain ``intelshare.v1``)
and, for invalid arguments, a ``google.rpc.BadRequest`` with one violation per
field. Anything else becomes ``INTERNAL`` with a fixed message, so internals
(paths, SQL, stack frames) never leak to a caller. Clients turn a status back
into the same exception class by its reason, so code on both sides of the
wire handles one hierarchy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from intelshare import errors
from intelshare.errors import ERROR_DOMAIN, IntelshareError

log = logging.getLogger(__name__)

_BY_REASON: dict[str, type[IntelshareError]] = {}
for _cls in errors.all_error_classes():
    # When several classes share a reason, the most specific one wins.
    _known = _BY_REASON.get(_cls.reason)
    if _known is None or issubclass(_cls, _known):
        _BY_REASON[_cls.reason] = _cls


def to_status(exc: IntelshareError) -> status_pb2.Status:
    """The ``google.rpc.Status`` a server sends for ``exc``."""
    code = getattr(code_pb2, exc.grpc_code)
    info = error_details_pb2.ErrorInfo(
        reason=exc.reason, domain=ERROR_DOMAIN, metadata=dict(exc.metadata)
    )
    details = []
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    violations = getattr(exc, "violations", None)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in sorted(violations.items())
            ]
        )
        packed_bad = any_pb2.Any()
        packed_bad.Pack(bad)
        details.append(packed_bad)
    return status_pb2.Status(code=code, message=exc.message, details=details)


def abort(context: grpc.ServicerContext, exc: IntelshareError) -> NoReturn:
    """Abort the call with the status for ``exc``."""
    context.abort_with_status(rpc_status.to_status(to_status(exc)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def from_rpc_error(err: grpc.RpcError) -> IntelshareError:
    """The project exception a client raises for a failed call."""
    call = cast(grpc.Call, err)
    status = rpc_status.from_call(call)
    reason = ""
    metadata: dict[str, str] = {}
    violations: dict[str, str] = {}
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = {v.field: v.description for v in bad.field_violations}
    message = call.details() or ""
    if not reason:
        code = call.code()
        # Without a reason from our servers, these mean the call was cut by the
        # transport or a shutting-down server: worth retrying, never final.
        if code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
        ):
            return errors.Unavailable(message or code.name)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return errors.Unauthenticated(message)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return errors.PermissionDenied(message)
        exc = IntelshareError(message or code.name)
        exc.grpc_code = code.name
        return exc
    cls = _BY_REASON.get(reason, IntelshareError)
    if issubclass(cls, errors.InvalidArgument):
        return cls(message, violations=violations, metadata=metadata)
    result = cls(message, metadata=metadata)
    if cls is IntelshareError:
        result.reason = reason
    return result


@contextmanager
def project_errors() -> Iterator[None]:
    """The client boundary: a failed call's ``grpc.RpcError`` becomes the project's exception."""
    try:
        yield
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None


def follow(call: Any) -> Iterator[Any]:
    """The messages of a server stream until it ends or the caller stops iterating.

    Cancellation (the caller's own, or a closed channel) ends it quietly; any
    other failure is the project's exception. The call is cancelled when the
    caller stops, so the server's side ends too.
    """
    try:
        yield from call
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.CANCELLED:
            return
        raise from_rpc_error(err) from None
    finally:
        call.cancel()


def _answer_internal(context: grpc.ServicerContext, where: str) -> None:
    """Anything but a project error: logged here, ``INTERNAL`` with no detail to the caller."""
    if context.code() is not None:  # type: ignore[attr-defined]  # aborted already
        raise  # the exception being handled by our caller
    log.exception("unhandled error in %s", where)
    context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _unary(call: Callable[[Any, Any], Any], where: str) -> Callable[[Any, Any], Any]:
    def translated(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request, context)
        except IntelshareError as exc:
            abort(context, exc)
        except Exception:
            _answer_internal(context, where)

    return translated


def _streaming(
    call: Callable[[Any, Any], Iterator[Any]], where: str
) -> Callable[[Any, Any], Iterator[Any]]:
    # Iterates inside the try, so errors raised mid-stream are translated too.
    def translated(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from call(request, context)
        except IntelshareError as exc:
            abort(context, exc)
        except Exception:
            _answer_internal(context, where)

    return translated


class TranslateErrors(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Every method of a server answers project errors as rich statuses.

    The one place the exception hierarchy meets the wire on the server side:
    an :class:`~intelshare.errors.IntelshareError` becomes its status with
    ``ErrorInfo`` (and ``BadRequest``), anything else ``INTERNAL``.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        where = handler_call_details.method
        if handler.unary_unary is not None:
            behavior = same_pool(_unary(handler.unary_unary, where), handler.unary_unary)
            return handler._replace(unary_unary=behavior)
        if handler.unary_stream is not None:
            behavior = same_pool(_streaming(handler.unary_stream, where), handler.unary_stream)
            return handler._replace(unary_stream=behavior)
        if handler.stream_stream is not None:
            # ScreenDeclarations: its errors (a refused token mid-stream) need their
            # reason too, and anything else must not reach the caller as its message.
            behavior = same_pool(_streaming(handler.stream_stream, where), handler.stream_stream)
            return handler._replace(stream_stream=behavior)
        return handler


_B = TypeVar("_B", bound=Callable[..., Any])


def same_pool(wrapper: _B, behavior: Callable[..., Any]) -> _B:
    """``wrapper`` runs on the thread pool ``behavior`` was given, if any.

    A method can be put on a thread pool of its own (gRPC's
    ``experimental_thread_pool`` attribute of its behavior, as the gateway
    does for inbox streams and health watches); a wrapper must keep it, or
    the method silently falls back to the server's threads.
    """
    pool = getattr(behavior, "experimental_thread_pool", None)
    if pool is not None:
        wrapper.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return wrapper
