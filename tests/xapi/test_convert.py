"""convert.FIELDS is exactly what the converters read, so the sync may keep only that.

Why: the sync cuts every event.from snapshot to `FIELDS[cls]` while it is decoded. A converter
reading a field missing from `FIELDS` would silently see its default instead of xapi's value;
these tests make that impossible to miss.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.synthetic import PoolSpec, records
from netctl.sources.xapi.convert import FIELDS, project, to_model
from netctl.sources.xapi.sync import SYNC_CLASSES
from netctl.xapisim.schema import CLASSES
from netctl.xapisim.store import Store


class Reading(dict):
    """A record that remembers which fields were read."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


@pytest.fixture(scope="module")
def pool_records() -> dict[str, dict[str, dict[str, Any]]]:
    recs = records(PoolSpec(hosts=2, vifs_per_host=7))
    store = Store()  # a class the synthetic pool has none of, with every field
    ref = store.insert("SDN_controller", {"address": "10.0.0.1", "port": 6640})
    recs["SDN_controller"] = {ref: store.record("SDN_controller", ref)}
    return recs


def test_fields_are_datamodel_fields():
    for cls, names in FIELDS.items():
        assert cls in SYNC_CLASSES
        missing = [n for n in names if CLASSES[cls].field(n) is None]
        assert not missing, f"{cls}: not xapi fields: {missing}"


def test_converters_read_only_fields_and_projection_converts_the_same(pool_records):
    metrics = pool_records["host_metrics"]
    for cls in SYNC_CLASSES:
        if cls == "host_metrics":
            continue
        assert pool_records[cls], f"no {cls} record to check"
        for ref, rec in pool_records[cls].items():
            reading = Reading(rec)
            seen_metrics = {k: Reading(v) for k, v in metrics.items()}
            full = to_model(cls, ref, reading, seen_metrics)
            assert reading.read <= set(FIELDS[cls]), (cls, reading.read - set(FIELDS[cls]))
            for m in seen_metrics.values():
                assert m.read <= set(FIELDS["host_metrics"])
            cut = {k: project("host_metrics", v) for k, v in metrics.items()}
            assert to_model(cls, ref, project(cls, rec), cut) == full


def test_store_snapshots_do_not_change_with_later_writes():
    store = Store()
    net = store.insert("network", {"name_label": "n", "other_config": {"a": "1"}})
    with store.lock:
        events, _ = store.scan({"network": None}, 0)
    snap = events[0]["snapshot"]
    vm = store.insert("VM", {"name_label": "vm"})
    store.insert("VIF", {"network": net, "VM": vm, "device": "0"})  # fan-out: network.VIFs
    store.update("network", net, other_config={"a": "2"})
    assert snap["VIFs"] == [] and snap["other_config"] == {"a": "1"}
    assert store.record("network", net)["VIFs"] != []
