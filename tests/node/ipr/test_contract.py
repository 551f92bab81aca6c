"""The IprService contract keeps its conventions: paging, idempotency, resource names."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from intelshare.v1 import detention_pb2, ipr_service_pb2, recordation_pb2

SERVICE = ipr_service_pb2.DESCRIPTOR.services_by_name["IprService"]
READS = ("Get", "List", "Search", "Watch")


def test_every_list_and_search_pages() -> None:
    for method in SERVICE.methods:
        if method.name.startswith(("List", "Search")):
            fields = method.input_type.fields_by_name
            assert fields["page_size"].type == FieldDescriptor.TYPE_INT32, method.name
            assert fields["page_token"].type == FieldDescriptor.TYPE_STRING, method.name
            assert "next_page_token" in method.output_type.fields_by_name, method.name


def test_every_mutation_takes_a_request_id() -> None:
    mutations = [m for m in SERVICE.methods if not m.name.startswith(READS)]
    assert len(mutations) >= 12
    for method in mutations:
        if method.name == "GetEnforcementStatistics":
            continue
        assert "request_id" in method.input_type.fields_by_name, method.name


def test_watch_is_a_server_stream_with_a_cursor() -> None:
    watch = SERVICE.methods_by_name["WatchDetentions"]
    assert watch.server_streaming
    assert not watch.client_streaming
    assert "after_cursor" in watch.input_type.fields_by_name
    items = {f.name for f in watch.output_type.oneofs_by_name["item"].fields}
    assert items == {"event", "heartbeat"}


def test_moves_and_extensions_carry_a_reason() -> None:
    for name in (
        "MoveDetention",
        "ExtendDeadline",
        "ExtendRecordation",
        "WithdrawRecordation",
        "SuspendRecordation",
        "ResumeRecordation",
        "DiscloseDetentionParties",
        "RequestDetentionSamples",
    ):
        assert "reason" in SERVICE.methods_by_name[name].input_type.fields_by_name, name


def test_the_enums_the_issue_names() -> None:
    rights = {n.removeprefix("RIGHT_TYPE_") for n in recordation_pb2.RightType.keys()}  # noqa: SIM118
    assert rights >= {
        "TRADE_MARK",
        "DESIGN",
        "PATENT",
        "COPYRIGHT",
        "GEOGRAPHICAL_INDICATION",
        "PLANT_VARIETY",
        "UTILITY_MODEL",
        "SUPPLEMENTARY_PROTECTION_CERTIFICATE",
        "TRADE_NAME",
        "TOPOGRAPHY",
    }
    states = {
        n.removeprefix("RECORDATION_STATE_")
        for n in recordation_pb2.RecordationState.keys()  # noqa: SIM118
    }
    assert states >= {"GRANTED", "EXTENDED", "EXPIRED", "WITHDRAWN", "SUSPENDED"}
    procedures = {
        n.removeprefix("DETENTION_PROCEDURE_")
        for n in detention_pb2.DetentionProcedure.keys()  # noqa: SIM118
    }
    assert procedures >= {"STANDARD", "EX_OFFICIO", "SMALL_CONSIGNMENT"}


def test_internal_notes_exist_to_be_withheld() -> None:
    # The views withhold these by name; a rename must not silently share them.
    assert "internal_notes" in recordation_pb2.Recordation.DESCRIPTOR.fields_by_name
    assert "internal_notes" in detention_pb2.Detention.DESCRIPTOR.fields_by_name
    assert "officer" in recordation_pb2.RecordationMove.DESCRIPTOR.fields_by_name
    assert "officer" in detention_pb2.DetentionMove.DESCRIPTOR.fields_by_name
