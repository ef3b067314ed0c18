"""The robustness suite in pytest: the harness's own self-checks, then every mutation case.

The CI size runs in a few minutes on two processes with a fixed seed; ``--robustness-long``
(or ``IMSEQ_ROBUSTNESS=long``) runs many more mutations. A failing family lists every case that
is not exact or a clean error, with the command that reproduces it.
"""

from __future__ import annotations

import pytest

from . import harness, misuse, oracle, probe
from .run import failure_list, table

FAMILIES = [
    "seq",
    "tiff",
    "video",
    "gif",
    "zarr",
    "folder",
    "special files",
    "writer round trip",
    "api misuse",
]


@pytest.fixture(scope="module")
def settings(request) -> harness.Settings:
    return harness.Settings(long=request.config.getoption("--robustness-long"))


@pytest.fixture(scope="module")
def results(settings) -> list[dict]:
    return harness.run_cases(harness.build_cases(settings), settings)


# ---- the harness sees every class ------------------------------------------------------------
@pytest.mark.parametrize(
    "base, expected",
    [("selftest_hang", "hang"), ("selftest_crash", "crash"), ("selftest_exit", "crash"),
     ("selftest_memory", "memory"), ("selftest_wrong", "wrong")],
)  # fmt: skip
def test_harness_detects_planted_faults(base, expected):
    s = harness.Settings(timeout=3, memory=1 << 30)
    (r,) = harness.run_cases([{"id": base, "base": base, "mutation": {"kind": base}, "seed": 1}], s)
    assert r["cls"] == expected, r


def _outcome(**kw):
    out = {"errors": [], "mismatch": [], "warnings": [], "n": 3, "indices": [0, 1, 2],
           "seq": {0: ("ok", "a"), 1: ("ok", "b"), 2: ("ok", "c")}}  # fmt: skip
    out.update(kw)
    return out


def _err(ours=True, names=True, memory=False):
    return {
        "type": "x.Err",
        "ours": ours,
        "names_file": names,
        "memory": memory,
        "msg": "m",
        "where": "",
    }


def test_classify_compares_with_every_alternative():
    ref = [oracle.Alternative(["a", "b", "c"])]
    assert probe.classify(_outcome(), probe.compare(_outcome(), ref))[0] == "exact"
    assert probe.compare(_outcome(), [oracle.Alternative(["a", "X", "c"])])
    # a frame the reference cannot decode must not be returned
    assert probe.compare(_outcome(), [oracle.Alternative(["a", None, "c"])])
    # more frames than the reference holds
    assert probe.compare(_outcome(), [oracle.Alternative(["a", "b"])])
    # fewer frames: only with a SequenceWarning
    short = _outcome(n=2, seq={0: ("ok", "a"), 1: ("ok", "b")})
    four = [oracle.Alternative(["a", "b", "c", "d"])]
    assert probe.compare(short, four)
    warned = {**short, "warnings": [("SequenceWarning", "cut")]}
    assert probe.compare(warned, four) == []
    # one acceptable alternative is enough
    assert probe.compare(_outcome(), [oracle.Alternative(["z"]), *ref]) == []


def test_classify_errors():
    assert probe.classify(_outcome(open_error=_err()), [])[0] == "clean_error"
    assert probe.classify(_outcome(open_error=_err(ours=False)), [])[0] == "raw_error"
    assert probe.classify(_outcome(open_error=_err(names=False)), [])[0] == "raw_error"
    assert probe.classify(_outcome(open_error=_err(memory=True)), [])[0] == "memory"
    seq = {0: ("ok", "a"), 1: ("err", _err(ours=False))}
    assert probe.classify(_outcome(seq=seq), [])[0] == "raw_error"
    assert probe.classify(_outcome(mismatch=["iter differs"]), [])[0] == "wrong"


def test_cases_are_reproducible(settings):
    a, b = harness.build_cases(settings), harness.build_cases(settings)
    assert [c["id"] for c in a] == [c["id"] for c in b]
    assert [c["seed"] for c in a] == [c["seed"] for c in b]
    assert len({c["id"] for c in a}) == len(a), "case ids must be unique to reproduce one"
    assert {harness.family_of(c) for c in a} == set(FAMILIES)
    assert len(misuse.CASES) >= 10


# ---- the suite -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_no_hang_crash_wrong_memory_raw_error_or_data_loss(results, settings, family):
    mine = [r for r in results if r["family"] == family]
    assert mine, f"no case for {family}"
    bad = harness.failures(mine)
    assert not bad, (
        f"{len(bad)} of {len(mine)} {family} cases are not exact or a clean error\n"
        + table(mine)
        + "\n"
        + failure_list(mine, settings)
    )


# ---- reads through sources other than a path ---------------------------------------------------
def test_sources_agree_with_the_path_and_catch_a_planted_difference(tmp_path):
    from . import corpus, sources

    base = corpus.seq_raw8(tmp_path)
    path = __import__("pathlib").Path(base.path)
    out = probe.read_everything(path, 1)
    kinds = [*sources.KINDS, "http"]
    assert out["n"] == len(base.truth)
    assert sources.read_through(kinds, path, out["seq"], out["n"], out["iter"], probe.describe) == (
        [],
        [],
    )
    planted = {**out["seq"], 1: ("ok", "not this frame")}
    mism, _ = sources.read_through(kinds, path, planted, out["n"], out["iter"], probe.describe)
    assert [m.split(":")[0] for m in mism] == kinds
    # a source that opens where the path did not is reported too
    mism, _ = sources.read_through(["bytes"], path, {}, None, [], probe.describe)
    assert mism and "the path does not" in mism[0]


def test_every_readable_file_case_reads_through_a_source(settings):
    cases = harness.build_cases(settings)
    with_src = [c for c in cases if c.get("sources")]
    assert len(with_src) > len(cases) // 2
    kinds = {k for c in with_src for k in c["sources"]}
    assert kinds >= {"bytes", "bytesio", "memory"}


def test_tiff_pages_read_as_frames_are_accepted_only_with_the_layout_warning(tmp_path):
    """Seed 1's `tiff_imagej_tzcyx:flip[n=4,seed=348467578]`: the damaged ImageDescription
    loses the hyperstack layout, the reader warns and reads each page as a frame. Those
    frames are tifffile's pages one by one: accepted with the warning, wrong without it,
    and wrong if they differ from the pages."""
    from pathlib import Path

    from . import corpus, mutations

    cid = "tiff_imagej_tzcyx:flip[n=4,seed=348467578]"
    case = next(
        c for c in harness.build_cases(harness.Settings(seed=1, long=True)) if c["id"] == cid
    )
    (tmp_path / "d").mkdir()
    base = corpus.GENERATORS[case["base"]](tmp_path / "d")
    applied = mutations.apply(base, case["mutation"], case["seed"])
    alts = probe.references(base, applied, None)
    outcome = probe.read_everything(Path(base.path), case["seed"])
    assert outcome["n"] == len(applied.layout["pages"]) > 3  # pages read as frames
    assert any("layout" in w[1] for w in outcome["warnings"]), outcome["warnings"]
    assert any(v[0] == "ok" for v in outcome["seq"].values())
    assert probe.compare(outcome, alts) == []
    silent = {**outcome, "warnings": [w for w in outcome["warnings"] if "layout" not in w[1]]}
    assert not [w for w in silent["warnings"] if w[0] == "SequenceWarning"]
    assert probe.compare(silent, alts)
    k, (kind, _) = next((k, v) for k, v in outcome["seq"].items() if v[0] == "ok")
    other = {**outcome, "seq": {**outcome["seq"], k: (kind, "0" * 16)}}
    assert probe.compare(other, alts)
