"""The style loader's combo: local style files, never resume-state files, and the Hub choice last
(its label is saved in workflows, so it must never change). No ComfyUI needed here."""

from depthstyle.nodes.model_choices import HUB_STYLE_CHOICE, style_model_choices
from depthstyle.trainers.run.paths import TrainPaths


def test_hub_choice_label_is_the_released_one():
    assert HUB_STYLE_CHOICE == "(from hub_repo_id)"


def test_styles_sorted_then_the_hub_choice_and_state_files_left_out():
    state = TrainPaths.for_model("my_style.safetensors").state.name
    files = ["zebra.safetensors", "sub/a.safetensors", state, "candy.safetensors", "candy.safetensors"]
    assert style_model_choices(files) == [
        "candy.safetensors",
        "sub/a.safetensors",
        "zebra.safetensors",
        HUB_STYLE_CHOICE,
    ]


def test_without_local_files_only_the_hub_choice_is_offered():
    assert style_model_choices([]) == [HUB_STYLE_CHOICE]
    assert style_model_choices(["x.state.safetensors", HUB_STYLE_CHOICE]) == [HUB_STYLE_CHOICE]
