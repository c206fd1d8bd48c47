"""Combo values the depth nodes save in workflows: model labels and their mapping onto the library's
built-in models, precisions and normalisations. They must never change (no ComfyUI needed here)."""

import pytest

from depthstyle.depthstyle_core.depth import DEPTH_MODELS, NORMALIZATIONS, PRECISIONS
from depthstyle.nodes.model_choices import (
    BUILTIN_DEPTH_MODELS,
    DEFAULT_DEPTH_MODEL,
    builtin_depth_model,
    depth_model_choices,
)


def test_labels_are_the_released_ones_and_small_is_the_default():
    assert list(BUILTIN_DEPTH_MODELS) == [
        "Depth-Anything-V2-Small (Apache-2.0)",
        "Depth-Anything-V2-Base (CC-BY-NC-4.0, non-commercial)",
        "Depth-Anything-V2-Large (CC-BY-NC-4.0, non-commercial)",
    ]
    assert depth_model_choices([])[0] == DEFAULT_DEPTH_MODEL == "Depth-Anything-V2-Small (Apache-2.0)"


@pytest.mark.parametrize(("label", "key"), list(BUILTIN_DEPTH_MODELS.items()))
def test_each_label_names_the_licence_of_the_model_it_loads(label, key):
    spec = DEPTH_MODELS[key]
    assert label.startswith(spec.display_name + " (")
    assert spec.licence in label
    assert ("non-commercial" in label) == spec.non_commercial


def test_builtin_models_have_distinct_file_names_in_the_model_folder():
    # The loader searches the depthstyle_depth folders for a built-in's file name before the Hub;
    # two built-ins sharing a name would silently load one model for the other.
    names = [DEPTH_MODELS[key].hub_file.local_filename for key in BUILTIN_DEPTH_MODELS.values()]
    assert len(set(names)) == len(names), names


def test_local_files_follow_the_builtins_sorted_without_duplicates():
    local = ["zoe.safetensors", "sub/a.safetensors", "b.safetensors", "b.safetensors"]
    assert depth_model_choices(local) == [
        *BUILTIN_DEPTH_MODELS,
        "b.safetensors",
        "sub/a.safetensors",
        "zoe.safetensors",
    ]


def test_a_local_file_cannot_shadow_a_builtin_label():
    assert depth_model_choices([DEFAULT_DEPTH_MODEL]) == list(BUILTIN_DEPTH_MODELS)


def test_builtin_depth_model_maps_labels_and_passes_local_files_through_as_none():
    assert builtin_depth_model("Depth-Anything-V2-Large (CC-BY-NC-4.0, non-commercial)") == "large"
    assert builtin_depth_model("my_depth.safetensors") is None


def test_precision_and_normalization_options_stay_as_released():
    # The nodes offer these library constants as combo options, in this order.
    assert list(PRECISIONS) == ["fp32", "fp16", "bf16"]
    assert list(NORMALIZATIONS) == ["per_image", "per_batch", "raw"]
