"""A user's own files: the three formats read into arrays, the splits they get, and every refusal's one line."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data.userdata import digit_images, digits_npz, wine_csv, wine_rows
from tuning.data.datasets import load_dataset
from tuning.data.types import DataOptions
from tuning.errors import UsageError


def test_feature_vectors_from_an_npz_are_features_with_a_stratified_shuffled_validation_split(tmp_path):
    path = digits_npz(tmp_path, sort_by_class=True)  # sorted by class: an unshuffled tail would validate on 9s only
    dataset = load_dataset(str(path))
    assert dataset.kind == "features" and dataset.input_shape == (64,) and dataset.n_classes == 10
    assert np.bincount(dataset.val.y, minlength=10).min() >= 10  # every class validates
    shares = np.bincount(dataset.val.y, minlength=10) / np.bincount(dataset.train.y, minlength=10)
    assert shares.max() - shares.min() < 0.05  # stratified: each class keeps its share
    assert dataset.train.x.max() == 16.0  # feature vectors as given: standardization is inside the model
    assert dataset.raw_input.scale == 1.0 and dataset.source_fingerprint
    assert len(dataset.train) + len(dataset.val) == 1437 and len(dataset.test) == 360
    again = load_dataset(str(path))
    assert np.array_equal(again.val.y, dataset.val.y) and np.array_equal(again.val.x, dataset.val.x)  # a fixed seed


def test_images_in_an_npz_are_scaled_and_the_export_told_how(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "pixels.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 12, 12), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (9, 12, 12), dtype=np.uint8), y_test=np.arange(9) % 3,
             x_val=rng.integers(0, 256, (6, 12, 12), dtype=np.uint8), y_val=np.arange(6) % 3,
             class_names=np.array(["cat", "dog", "owl"]))  # fmt: skip
    dataset = load_dataset(str(path))
    assert dataset.kind == "images" and dataset.class_names == ("cat", "dog", "owl")
    assert dataset.max_value == 255.0 and dataset.raw_input.scale == pytest.approx(1 / 255)
    assert 0.0 <= dataset.train.x.min() and dataset.train.x.max() <= 1.0
    assert len(dataset.val) == 6 and len(dataset.train) == 60  # x_val given: used as it is
    assert load_dataset(str(path), options=DataOptions(kind="features")).kind == "features"


def test_a_csv_table_one_hot_encodes_its_text_column_and_holds_out_a_stratified_test_share(tmp_path):
    dataset = load_dataset(str(wine_csv(tmp_path)), options=DataOptions(label="cultivar"))
    assert dataset.kind == "table" and dataset.class_names == ("class_0", "class_1", "class_2")
    columns = dataset.raw_input.table.columns
    assert [c.name for c in columns] == ["alcohol", "malic_acid", "ash", "hue", "cellar"]
    assert columns[-1].vocabulary is not None and columns[0].vocabulary is None
    assert dataset.input_shape == (4 + len(columns[-1].vocabulary) + 1,)
    assert len(dataset.test) == round(0.2 * 178) and set(np.unique(dataset.test.y)) == {0, 1, 2}
    assert any("20% of the rows held out" in note for note in dataset.notes)


def test_a_csv_test_file_gives_the_test_rows_and_an_unseen_text_value_gets_the_unseen_slot(tmp_path):
    header, rows = wine_rows()
    train = wine_csv(tmp_path, "train.csv", rows[:150])
    test_rows = [row[:] for row in rows[150:]]
    test_rows[0][4] = "a cellar training never saw"
    test = wine_csv(tmp_path, "test.csv", test_rows)
    dataset = load_dataset(str(train), options=DataOptions(label="cultivar", test=str(test)))
    assert len(dataset.test) == 28 and len(dataset.train) + len(dataset.val) == 150
    width = len(dataset.raw_input.table.columns[-1].vocabulary) + 1
    assert dataset.test.x[0, 4] == 1.0 and dataset.test.x[0, 5:4 + width].sum() == 0  # slot 0: unseen


def test_a_folder_of_images_reads_grey_pngs_with_class_names_from_the_folders(tmp_path):
    dataset = load_dataset(str(digit_images(tmp_path)))
    assert dataset.kind == "images" and dataset.input_shape == (8, 8, 1)
    assert dataset.class_names == tuple(f"digit_{i}" for i in range(10))
    assert dataset.raw_input.scale == pytest.approx(1 / 255) and not dataset.mirror_invariant
    assert len(dataset.train) + len(dataset.val) + len(dataset.test) == 400


def test_a_folder_with_train_and_test_folders_takes_its_test_split_from_them(tmp_path):
    dataset = load_dataset(str(digit_images(tmp_path, layout="split")))
    assert len(dataset.test) == 80 and any("test: the images of" in note for note in dataset.notes)


def test_mixed_image_sizes_are_refused_without_image_size_and_resized_with_it(tmp_path):
    from PIL import Image

    root = digit_images(tmp_path, per_class=5)
    Image.new("L", (10, 12)).save(root / "digit_3" / "odd.png")
    with pytest.raises(UsageError, match=r"images differ in size: .* is 8×8 but .*odd.png is 10×12; pass --image-size HxW"):
        load_dataset(str(root))
    resized = load_dataset(str(root), options=DataOptions(image_size=(6, 7)))
    assert resized.input_shape == (6, 7, 1) and resized.raw_input.image_size == (6, 7)


@pytest.mark.parametrize("spoil, message", [
    (lambda root: (root / "digit_2" / "broken.png").write_bytes(b"not a png"), r"cannot read image .*digit_2/broken.png"),
    (lambda root: (root / "digit_x").mkdir(), r"class folder .*digit_x holds no images"),
])  # fmt: skip
def test_an_unreadable_image_or_an_empty_class_folder_is_named(tmp_path, spoil, message):
    root = digit_images(tmp_path, per_class=5)
    spoil(root)
    with pytest.raises(UsageError, match=message):
        load_dataset(str(root))


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no class folders"):
        load_dataset(str(tmp_path / "empty"))


def test_nan_in_a_feature_column_names_the_column_and_the_rows(tmp_path):
    x = np.ones((50, 4), np.float32)
    x[[3, 7], 2] = np.nan
    path = tmp_path / "gaps.npz"
    np.savez(path, x_train=x, y_train=np.arange(50) % 2, x_test=np.ones((4, 4)), y_test=np.arange(4) % 2)
    with pytest.raises(UsageError, match=r"train column 2 holds NaN or infinite values \(2 row\(s\) in all\)"):
        load_dataset(str(path))


def test_a_missing_value_in_a_csv_number_column_names_the_column_and_the_rows(tmp_path):
    header, rows = wine_rows()
    rows[4][1] = rows[9][1] = ""
    with pytest.raises(UsageError, match=r"column 'malic_acid' has 2 row\(s\) with a missing, NaN or infinite value"):
        load_dataset(str(wine_csv(tmp_path, rows=rows)), options=DataOptions(label="cultivar"))


@pytest.mark.parametrize("label, message", [
    ("grape", r"--label 'grape' is not a column of wine.csv; its columns are alcohol, malic_acid"),
    ("cellar_constant", r"--label column 'cellar_constant' of wine.csv holds one value only"),
])  # fmt: skip
def test_a_missing_or_constant_label_column_is_refused(tmp_path, label, message):
    header, rows = wine_rows()
    path = wine_csv(tmp_path, rows=[[*row, "same"] for row in rows], header=[*header, "cellar_constant"])
    with pytest.raises(UsageError, match=message):
        load_dataset(str(path), options=DataOptions(label=label))


def test_one_class_and_a_test_class_training_never_saw_are_refused(tmp_path):
    one = tmp_path / "one.npz"
    np.savez(one, x_train=np.ones((20, 3)), y_train=np.zeros(20, int), x_test=np.ones((2, 3)), y_test=np.zeros(2, int))
    with pytest.raises(UsageError, match="the training labels hold only one class"):
        load_dataset(str(one))
    unseen = tmp_path / "unseen.npz"
    np.savez(unseen, x_train=np.ones((20, 3)), y_train=np.arange(20) % 2, x_test=np.ones((3, 3)), y_test=np.array([0, 1, 7]))
    with pytest.raises(UsageError, match="class '7' is in the test split but never in training"):
        load_dataset(str(unseen))


def test_the_fingerprint_follows_the_files_bytes(tmp_path):
    path = digits_npz(tmp_path)
    first = load_dataset(str(path)).source_fingerprint
    digits_npz(tmp_path, sort_by_class=True)
    assert load_dataset(str(path)).source_fingerprint != first
