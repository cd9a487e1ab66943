"""The run-record schema: key namespaces agree with the typed records, and reading checks."""

from __future__ import annotations

import dataclasses

import pytest

from capreolus_opt.records import schema
from capreolus_opt.records.schema import (
    ConfigKey,
    InfoKey,
    MetricName,
    RecordedConfig,
    RecordedInfo,
    RecordError,
)

UUID = "0123456789abcdef0123456789abcdef"


def test_typed_records_name_only_schema_keys():
    assert {f.name for f in dataclasses.fields(RecordedConfig)} == set(schema.keys(ConfigKey))
    assert {f.name for f in dataclasses.fields(RecordedInfo)} <= set(schema.keys(InfoKey))


def test_config_round_trips_through_its_stored_form():
    config = RecordedConfig(
        gin_files=["/a.gin"],
        gin_bindings=["train.seed = 3"],
        hparams={"train.seed": 3, "AdamMultilr.pattern_lrs": [["head", 0.1]]},
        seed=3,
        workdir="wd",
    )
    stored = config.to_record()
    assert stored[ConfigKey.HPARAMS] == [
        ["train.seed", 3],
        ["AdamMultilr.pattern_lrs", [["head", 0.1]]],
    ]
    assert RecordedConfig.from_record(stored) == config
    assert ConfigKey.SEED not in dataclasses.replace(config, seed=None).to_record()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "config is missing"),
        ({ConfigKey.HPARAMS: {"a": 1}}, "must be a list of [name, value] pairs"),
        ({ConfigKey.HPARAMS: [["a", 1, 2]]}, "is not a [name, value] pair"),
        ({ConfigKey.HPARAMS: [[1, 1]]}, "is not a [name, value] pair"),
    ],
)
def test_a_malformed_config_is_a_record_error(config, message):
    with pytest.raises(RecordError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RecordedConfig.from_record(config)


def test_info_reads_defaults_and_refuses_what_could_name_a_path():
    info = RecordedInfo.from_record({InfoKey.RUN_UUID: UUID})
    assert info == RecordedInfo(run_uuid=UUID, group_table=[])
    full = RecordedInfo.from_record({
        InfoKey.RUN_UUID: UUID,
        InfoKey.START_STEP: 4,
        InfoKey.BEAT_EVERY_S: 3.0,
        InfoKey.RESUMED_FROM: UUID,
        InfoKey.CONTINUED_FROM: "",
        InfoKey.STOPPED_REASON: "pruned",
        InfoKey.WORKDIR: 7,
    })  # fmt: skip
    assert (full.start_step, full.beat_every_s, full.resumed_from) == (4, 3.0, UUID)
    assert full.continued_from is None and full.stopped_reason == "pruned"
    assert full.workdir is None  # not a string: unknown
    with pytest.raises(RecordError, match="info.run_uuid is missing"):
        RecordedInfo.from_record({})
    with pytest.raises(RecordError, match="info.resumed_from"):
        RecordedInfo.from_record({InfoKey.RUN_UUID: UUID, InfoKey.RESUMED_FROM: "../x"})
    with pytest.raises(RecordError, match="group_table"):
        RecordedInfo.from_record({InfoKey.RUN_UUID: UUID, InfoKey.GROUP_TABLE: [1]})


def test_result_keeps_numbers_only():
    assert schema.result_from_record({"a": 1, "b": True, "c": "x", "d": 0.5}) == {
        "a": 1.0,
        "d": 0.5,
    }
    assert schema.result_from_record(0.7) == {}  # Sacred's float column: no dict result
    assert schema.result_to_record({"mrr@10": 1}) == {"mrr@10": 1.0}


def test_metric_names():
    assert MetricName.group("head", "lr") == "group/head/lr"
    assert MetricName.eval("mrr@10") == "eval/mrr@10"
    assert MetricName.TRAIN_LOSS == "train/loss"
