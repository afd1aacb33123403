"""Checks every analysis output of the pipeline must pass."""

import json


def assert_provenance_and_figures(ds, out, worms, analysis: str, figures) -> dict:
    """The result names its analysis and version, maps every worm to its source sha256,
    and the named figures exist, are not empty and have a caption that states a number.
    Returns the parsed parameters."""
    import re

    from pipeline.figures import caption_path

    assert ds.attrs["wormflow_analysis"] == analysis and ds.attrs["wormflow_version"]
    sha = json.loads(ds.attrs["source_sha256"])
    assert set(sha) == {str(w) for w in worms} and all(len(v) == 64 for v in sha.values())
    for name in figures:
        assert (out / "figures" / name).stat().st_size > 10_000, name
        caption = caption_path(out / "figures" / name).read_text()
        assert len(caption) > 60 and re.search(r"\d", caption), (name, caption)
    return json.loads(ds.attrs["parameters"])
