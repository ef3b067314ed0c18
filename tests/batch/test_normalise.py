"""Normalisation of a corpus: subsample statistics (within 1% of the full data, <= 5% of the
pixels, the pyramid level only), JSON reuse, stretch/equalize/match on gray and RGB."""

import json

import numpy as np
import pytest
import tifffile

import napari_imseq as imseq
from napari_imseq.batch import (
    NormaliseError,
    Normaliser,
    compute_stats,
    load_stats,
    normalise,
    sample_file,
)
from napari_imseq.batch._normalise import _percentile


def _corpus(folder, count=16, size=160, seed=0, dtype=np.uint16, rgb=False):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    paths, arrays = [], []
    for i in range(count):
        shape = (size, size, 3) if rgb else (size, size)
        top = 255 if dtype == np.uint8 else 65535
        scale = 40 if dtype == np.uint8 else 3000
        img = rng.gamma(4.0, scale / 4 * (1 + i / count), shape) + (
            10 if dtype == np.uint8 else 400
        )
        img = np.clip(img, 0, top).astype(dtype)
        p = folder / f"img{i:03d}.tif"
        tifffile.imwrite(p, img, photometric="rgb" if rgb else "minisblack")
        paths.append(str(p))
        arrays.append(img)
    return paths, arrays


def test_percentile_from_histogram_is_numpys():
    v = np.random.default_rng(1).integers(0, 1000, 5001)
    hist = np.bincount(v, minlength=1024)
    for q in (0, 0.5, 13.3, 50, 99.5, 100):
        assert _percentile(hist, q) == pytest.approx(np.percentile(v, q), abs=1e-9)


def test_subsample_statistics_within_one_percent(tmp_path, client):
    # 40 images of 256x256: the 4% subsample holds ~100k pixels, which the 0.5/99.5% tails
    # of this skewed distribution need to be within 1% (sampling noise falls as 1/sqrt(n))
    paths, arrays = _corpus(tmp_path / "in", count=40, size=256)
    stats = compute_stats(paths, client=client, progress=False)
    full = np.concatenate([a.ravel() for a in arrays])
    flo, fhi = np.percentile(full, (0.5, 99.5))
    assert abs(stats["lo"][0] - flo) <= 0.01 * (fhi - flo)
    assert abs(stats["hi"][0] - fhi) <= 0.01 * (fhi - flo)
    counts = np.zeros(65536)
    h = stats["histograms"][0]
    counts[h["values"]] = h["counts"]
    mean = (counts * np.arange(65536)).sum() / counts.sum()
    assert abs(mean - full.mean()) <= 0.01 * full.mean()
    sample = stats["sample"]
    assert sample["pixels_read"] <= 0.05 * full.size and sample["fraction"] <= 0.05
    assert sample["files"] == 40 and sample["pixels_total_estimate"] == full.size


def test_pyramid_reads_the_lowest_level_only(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    base = rng.integers(100, 60000, (3, 256, 256), dtype=np.uint16)
    path = tmp_path / "pyr.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, subifds=3, photometric="minisblack")
        for k in (2, 4, 8):
            tw.write(base[:, ::k, ::k], subfiletype=1, photometric="minisblack")
    from napari_imseq.io import _registry

    def refuse(*a, **k):
        raise AssertionError("the full-resolution frames were opened")

    monkeypatch.setattr(_registry, "open_sequence", refuse)
    s = sample_file(path)
    low = base[:, ::8, ::8]
    assert s["source"] == "pyramid level 3 (32x32)"
    assert s["pixels_read"] == low.size and s["pixels_total"] == base.size
    np.testing.assert_array_equal(s["hists"][0], np.bincount(low.ravel(), minlength=65536))
    # a shallow pyramid (lowest level 1/16 of the pixels, above 5%): its level is strided too
    shallow = tmp_path / "shallow.tif"
    with tifffile.TiffWriter(shallow) as tw:
        tw.write(base, subifds=2, photometric="minisblack")
        for k in (2, 4):
            tw.write(base[:, ::k, ::k], subfiletype=1, photometric="minisblack")
    s = sample_file(shallow)
    assert s["source"] == "pyramid level 2 (64x64), every 2th pixel"
    assert s["pixels_read"] == base[:, ::8, ::8].size <= 0.05 * base.size


def test_stretch_global_exact_json_reused(tmp_path, client):
    paths, arrays = _corpus(tmp_path / "in", count=6, size=64)
    out = tmp_path / "out"
    report = normalise(paths, out, client=client, progress=False)
    assert sorted(report.done) == sorted(paths) and not report.failed
    saved = load_stats(out / "imseq-stats.json")
    assert saved["lo"] == report.stats["lo"] and saved["method"] == "stretch"
    lo, hi = saved["lo"][0], saved["hi"][0]
    for p, a in zip(paths, arrays, strict=True):
        with imseq.open_sequence(out / p.rsplit("/", 1)[1]) as seq:
            got = seq[0]
        expect = imseq.transforms.rescale(a, in_range=(lo, hi))
        np.testing.assert_array_equal(got, expect)
    # new data with the saved statistics: the same mapping, no statistics pass
    new, new_arrays = _corpus(tmp_path / "new", count=2, size=64, seed=9)
    again = normalise(
        new, tmp_path / "out2", stats=out / "imseq-stats.json", client=client, progress=False
    )
    assert again.stats["lo"] == saved["lo"]
    with imseq.open_sequence(tmp_path / "out2" / "img000.tif") as seq:
        np.testing.assert_array_equal(
            seq[0], imseq.transforms.rescale(new_arrays[0], in_range=(lo, hi))
        )
    with pytest.raises(NormaliseError, match="method"):
        normalise(new, tmp_path / "o3", method="equalize", stats=out / "imseq-stats.json",
                  client=client, progress=False)  # fmt: skip
    # re-run: everything complete is skipped
    rerun = normalise(paths, out, client=client, progress=False)
    assert len(rerun.skipped) == 6 and not rerun.done


def test_per_file_stretch_standardises_each_image(tmp_path, client):
    paths, arrays = _corpus(tmp_path / "in", count=4, size=100)
    report = normalise(paths, tmp_path / "out", per_file=True, client=client, progress=False)
    assert not report.failed
    saved = json.loads((tmp_path / "out" / "imseq-stats.json").read_text())
    assert saved["scope"] == "per-file" and len(saved["files"]) == 4
    for p, a in zip(paths, arrays, strict=True):
        lo, hi = saved["files"][p]["lo"][0], saved["files"][p]["hi"][0]
        flo, fhi = np.percentile(a, (0.5, 99.5))  # a single image: all its pixels count
        assert lo == pytest.approx(flo, abs=1e-6) and hi == pytest.approx(fhi, abs=1e-6)
        with imseq.open_sequence(tmp_path / "out" / p.rsplit("/", 1)[1]) as seq:
            np.testing.assert_array_equal(seq[0], imseq.transforms.rescale(a, in_range=(lo, hi)))
    # an interrupted run resumed: the statistics of the files done before stay in the JSON
    (tmp_path / "out" / "img002.tif").unlink()
    again = normalise(paths, tmp_path / "out", per_file=True, client=client, progress=False)
    assert again.done == [paths[2]] and len(again.skipped) == 3
    assert json.loads((tmp_path / "out" / "imseq-stats.json").read_text()) == saved


@pytest.mark.parametrize("channels", ["luminance", "per-channel"])
def test_equalize_rgb_uint8(tmp_path, client, channels):
    paths, arrays = _corpus(tmp_path / "in", count=3, size=64, dtype=np.uint8, rgb=True)
    report = normalise(paths, tmp_path / "out", method="equalize", channels=channels,
                       client=client, progress=False)  # fmt: skip
    assert not report.failed
    mapping = Normaliser.build(
        "equalize", channels, "uint8",
        [np.array(h) for h in _dense_all(report.stats)],
    )  # fmt: skip
    with imseq.open_sequence(tmp_path / "out" / "img001.tif") as seq:
        got = seq[0]
    np.testing.assert_array_equal(got, mapping(arrays[1]))
    assert got.shape == arrays[1].shape and got.dtype == np.uint8
    assert got.std() > arrays[1].std()  # equalisation spreads the values


def _dense_all(stats):
    out = []
    for h in stats["histograms"]:
        d = np.zeros(256 if stats["dtype"] == "uint8" else 65536, np.int64)
        d[h["values"]] = h["counts"]
        out.append(d)
    return out


def test_match_to_a_reference_histogram(tmp_path, client):
    paths, _ = _corpus(tmp_path / "in", count=3, size=96, dtype=np.uint8)
    ref = tmp_path / "ref.tif"
    ref_img = np.random.default_rng(5).integers(150, 250, (96, 96), dtype=np.uint8)
    tifffile.imwrite(ref, ref_img)
    report = normalise(paths, tmp_path / "out", method="match", reference=ref, client=client,
                       progress=False)  # fmt: skip
    assert not report.failed and report.stats["reference"]["path"] == str(ref)
    with imseq.open_sequence(tmp_path / "out" / "img001.tif") as seq:
        got = seq[0]
    assert abs(np.median(got) - np.median(ref_img)) <= 5
    assert got.min() >= 140


def test_unsupported_dtype_is_reported_per_file(tmp_path, client):
    paths, _ = _corpus(tmp_path / "in", count=2, size=32, dtype=np.uint8)
    odd = tmp_path / "in" / "float.tif"
    tifffile.imwrite(odd, np.ones((32, 32), np.float32))
    stats = compute_stats(paths, client=client, progress=False)
    report = normalise([*paths, str(odd)], tmp_path / "out", stats=None, client=client,
                       progress=False)  # fmt: skip
    assert stats["dtype"] == "uint8"
    assert [s for s, _ in report.failed] == [str(odd)] and "float32" in report.failed[0][1]
