"""Label space, MAESTRO <-> DESED aliases and valid-class masks."""
import numpy as np
import pytest

from datamodules.sed import DESED_CLASSES, MAESTRO_REAL_CLASSES
from datamodules.sed.masks import SED_CLASSES_DCASE24, apply_aliases, map_classes, resolve_classes

L = SED_CLASSES_DCASE24
SPEECH, DISHES = L.index("Speech"), L.index("Dishes")
TALK, ANNOUNCE, CUTLERY = L.index("people talking"), L.index("announcement"), L.index("cutlery and dishes")


def _scatter(mapping, file_strong):
    """(C_file, T) targets of a file into the mapping's vocabulary."""
    strong = np.zeros((len(mapping.vocabulary), file_strong.shape[1]), np.float32)
    keep = mapping.index >= 0
    strong[mapping.index[keep]] = file_strong[keep]
    return strong


def test_label_space_and_presets(tmp_path):
    assert len(L) == 27 and L[:10] == DESED_CLASSES and L[10:] == MAESTRO_REAL_CLASSES
    assert resolve_classes("dcase24") == L and resolve_classes("desed") == DESED_CLASSES
    assert resolve_classes("maestro") == MAESTRO_REAL_CLASSES
    path = tmp_path / "classes.txt"
    path.write_text("dog\n\ncat\n")
    assert resolve_classes(str(path)) == ("dog", "cat")
    assert resolve_classes(["b", "a"]) == ("b", "a")


@pytest.mark.parametrize("classes, message", [
    ("desd", r"expected a preset name \['dcase24', 'desed', 'maestro'\] or the path"),
    ([], "the class list is empty"),
    (["a", "a"], r"classes listed twice: \['a'\]"),
    (["a", ""], "non-empty strings"),
])
@pytest.mark.bad_input
def test_bad_classes_setting(classes, message):
    with pytest.raises(ValueError, match=message):
        resolve_classes(classes)


def test_maestro_row_speech_is_max_of_its_aliases():
    mapping = map_classes(MAESTRO_REAL_CLASSES, L)
    file_strong = np.zeros((17, 4), np.float32)
    file_strong[MAESTRO_REAL_CLASSES.index("people talking"), :2] = 0.7
    file_strong[MAESTRO_REAL_CLASSES.index("announcement"), 1:3] = 0.9
    strong, weak = mapping.to_label_space(_scatter(mapping, file_strong), _scatter(mapping, file_strong).max(1))
    np.testing.assert_allclose(strong[SPEECH], [0.7, 0.9, 0.9, 0.0])
    assert weak[SPEECH] == pytest.approx(0.9)
    np.testing.assert_allclose(strong[TALK], [0.7, 0.7, 0.0, 0.0])  # sources keep their own targets
    assert strong[DISHES].sum() == 0
    expected = np.zeros(27, bool)
    expected[10:] = True
    expected[[SPEECH, DISHES]] = True
    np.testing.assert_array_equal(mapping.mask, expected)


def test_desed_row_mask_is_the_ten_desed_classes():
    mapping = map_classes(DESED_CLASSES, L)
    assert mapping.mask.tolist() == [True] * 10 + [False] * 17 and mapping.pairs == ()
    assert mapping.index.tolist() == list(range(10))


def test_aliases_off_and_reverse_aliases():
    assert map_classes(MAESTRO_REAL_CLASSES, L, aliases=False).mask[:10].sum() == 0
    reverse = map_classes(DESED_CLASSES, L, reverse_aliases=True)
    assert reverse.mask[TALK] and reverse.mask[CUTLERY] and reverse.mask.sum() == 12
    file_strong = np.zeros((10, 3), np.float32)
    file_strong[DESED_CLASSES.index("Speech")] = [1, 0, 1]
    strong, _ = reverse.to_label_space(_scatter(reverse, file_strong), np.zeros(len(reverse.vocabulary)))
    np.testing.assert_array_equal(strong[TALK], [1, 0, 1])
    assert strong[ANNOUNCE].sum() == 0  # Speech maps back to people talking only


def test_apply_aliases_reads_sources_before_any_change():
    # Speech <-> people talking both ways: no chain, each target is the max of itself and its valid sources
    strong = np.zeros((27, 2), np.float32)
    strong[TALK] = [0.3, 0.0]
    strong[SPEECH] = [0.0, 0.8]
    mask = np.zeros(27, bool)
    mask[[TALK, SPEECH]] = True
    pairs = ((TALK, SPEECH), (SPEECH, TALK), (ANNOUNCE, SPEECH))
    new_strong, new_weak, new_mask = apply_aliases(strong, strong.max(1), mask, pairs)
    np.testing.assert_allclose(new_strong[SPEECH], [0.3, 0.8])
    np.testing.assert_allclose(new_strong[TALK], [0.3, 0.8])
    assert new_mask.sum() == 2 and not new_mask[ANNOUNCE]  # announcement is not valid: no effect
    assert strong[SPEECH, 0] == 0  # inputs untouched
    batched = apply_aliases(strong[None], strong.max(1)[None], mask[None], pairs)
    np.testing.assert_allclose(batched[0][0], new_strong)
    with pytest.raises(ValueError, match="must agree"):
        apply_aliases(strong, strong.max(1)[:5], mask, pairs)


@pytest.mark.bad_input
def test_unknown_file_classes_warn_or_raise():
    warning = r"f\.h5: classes \['people talking', 'car'\] are not in the label space.*\['people talking'\] still feed"
    with pytest.warns(UserWarning, match=warning):
        mapping = map_classes(["people talking", "car"], DESED_CLASSES, source="f.h5")
    # people talking is outside DESED but still feeds Speech; car is ignored
    assert mapping.extra == ("people talking",) and mapping.index.tolist() == [10, -1]
    assert mapping.mask.tolist() == [i == 8 for i in range(10)]
    file_strong = np.array([[0.6, 0.0], [1.0, 1.0]], np.float32)
    strong, _ = mapping.to_label_space(_scatter(mapping, file_strong), np.zeros(11))
    assert strong.shape == (10, 2) and strong[8].tolist() == pytest.approx([0.6, 0.0])
    with pytest.raises(ValueError, match=r"f\.h5: classes \['people talking', 'car'\] are not in the label space"):
        map_classes(["people talking", "car"], DESED_CLASSES, strict=True, source="f.h5")
