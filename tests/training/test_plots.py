"""Learning curves of every fold (thin) and their mean (bold), the kept epoch marked; confusion matrices."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.core.epochs import Epoch
from pipeline.training import plots


def _history(accs: list[float]) -> list[Epoch]:
    return [Epoch(i + 1, 1 / (i + 1), 1.1 / (i + 1), valid_accuracy=a) for i, a in enumerate(accs)]


def test_fold_lines_are_each_fold_and_their_mean_over_the_epochs_all_reached():
    rows, mean = plots.fold_lines([_history([0.5, 0.7, 0.8]), _history([0.6, 0.9])], "valid_accuracy", 100)
    assert rows.shape == (2, 2)
    np.testing.assert_allclose(mean, [55.0, 80.0])


def test_learning_curves_of_folds_are_drawn(tmp_path):
    path = plots.learning_curves([_history([0.5, 0.7, 0.8]), _history([0.6, 0.7, 0.9])], tmp_path / "c.png",
                                 "titanic · linear")
    assert Image.open(path).size == (1000, 400)


def test_the_star_marks_the_epoch_a_fit_keeps():
    h = _history([0.5, 0.7, 0.8])  # validation losses fall: the last epoch is the best as well
    h[2] = Epoch(3, 0.3, 0.9, valid_accuracy=0.8)  # ... unless the last one's loss rose
    assert plots.kept_mark([h], 3, stopped=[False]) == (2, "kept: the last epoch (3)")
    assert plots.kept_mark([h], 3, stopped=[True]) == (1, "kept: the best epoch (2), stopped early")  # Ctrl-C, deadline
    assert plots.kept_mark([h, h], 3, [True, True]) == (2, "stopped early: each fold kept its best epoch (small stars)")
    assert plots.fold_marks([h, h], 3, [True, True]) == [(0, 1), (1, 1)]


def test_when_a_time_limit_cut_some_folds_each_cut_fold_is_marked_at_the_epoch_it_kept():
    cut = _history([0.6, 0.8])
    cut[1] = Epoch(2, 0.4, 1.2, valid_accuracy=0.8)  # its second epoch's loss rose: it kept its first
    stopped = [False, True, False]
    even = [_history([0.5, 0.7]), cut, _history([0.6, 0.7])]  # the cut came in the last epoch
    assert plots.kept_mark(even, 2, stopped) == (1, "kept: the last epoch (2) by 2 of 3 folds")
    assert plots.fold_marks(even, 2, stopped) == [(1, 0)]
    # the folds that went on kept their own last epoch, past the curves every fold reached
    longer = [_history([0.5, 0.7, 0.8]), cut, _history([0.6, 0.7, 0.9])]
    assert plots.kept_mark(longer, 2, stopped) == (1, "the last epoch all folds reached (2); 2 of 3 folds kept epoch 3")
    assert plots.fold_marks([longer[0]], 3, [True]) == []  # one fit: its star is the main one


def test_long_class_names_and_titles_stay_readable_in_the_confusion_matrix(tmp_path):
    classes = np.array(["1. < HS Grad", "2. HS Grad", "3. Some College", "4. College Grad", "5. Advanced Degree",
                        "6. " + "a name far longer than any axis holds " * 3])
    y = np.repeat(classes, 20)
    fig = plots.confusion_figure(y, np.roll(y, 7), classes, "a-rather-long-competition-slug · lgbm · OOF accuracy 40%")
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = ax.get_xticklabels()
    assert all(t.get_rotation() == 40 for t in labels)  # slanted: side by side they ran into each other
    assert all(t.get_window_extent(renderer).x0 >= 0 and t.get_window_extent(renderer).y0 >= 0 for t in labels)
    assert "…" in ax.get_xticklabels()[-1].get_text() and len(ax.get_yticklabels()[-1].get_text()) == 24
    width = fig.bbox.width
    title = fig._suptitle.get_window_extent(renderer)
    assert title.x0 >= 0 and title.x1 <= width and "\n" in fig._suptitle.get_text()  # wrapped, not cut at the edge
    path = plots.confusion_matrix(y, np.roll(y, 7), classes, tmp_path / "c.png", "t")
    assert Image.open(path).size[0] > 0
    short = plots.confusion_figure(np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([0, 1]), "titanic · linear")
    assert [t.get_rotation() for t in short.axes[0].get_xticklabels()] == [0, 0]  # digits and 0/1 stay level


def test_a_wrapped_title_keeps_its_score_beside_words_and_its_lines_inside_the_figure():
    classes = np.array(["Adelie", "Chinstrap", "Gentoo"])
    y = np.repeat(classes, 20)
    title = "house-prices-advanced-regression-techniques · SaleCondition · blend · OOF accuracy 97.76%"
    fig = plots.confusion_figure(y, np.roll(y, 3), classes, title)
    lines = fig._suptitle.get_text().splitlines()
    assert len(lines) == 3 and not any(line.startswith("·") for line in lines)
    assert min(map(len, lines)) >= 0.5 * max(map(len, lines))  # no "97.76%" or "(2×)" alone on a line
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert plots.balanced_lines("titanic · linear · OOF accuracy 82.49%", 36) == ["titanic · linear ·",
                                                                                  "OOF accuracy 82.49%"]
    assert plots.balanced_lines("short", 36) == ["short"]
    assert plots.balanced_lines("averyveryverylongcompetitionslugname · lgbm · OOF accuracy 97.76%", 50) == [
        "averyveryverylongcompetitionslugname ·", "lgbm · OOF accuracy 97.76%"]  # a word that fits is never cut
    assert plots.balanced_lines("", 36) == []
    assert plots.balanced_lines("santander-customer-transaction-prediction · lgbm · OOF AUC 0.8912", 48) == [
        "santander-customer-transaction-prediction ·", "lgbm · OOF AUC 0.8912"]  # a slug is cut at no hyphen
    assert plots.balanced_lines("a santander-customer-transaction-prediction", 20) == [
        "a santander-", "customer-", "transaction-", "prediction"]  # unless it is longer than a line
    assert plots.balanced_lines("X" * 59 + " · knn · OOF accuracy 98.00%", 60) == [
        "X" * 59, "knn · OOF accuracy 98.00%"]  # a name that fits a line without its " ·" is not cut
    slug = "-".join(["part"] * 20)
    lines = plots.balanced_lines(f"{slug} · lgbm · OOF accuracy 97.76%", 60)
    assert max(map(len, lines)) <= 60 and min(map(len, lines)) >= 0.5 * max(map(len, lines))  # no score alone
    assert all(line.endswith(("-", "·")) for line in lines[:-1]) and " · lgbm · " in " ".join(lines)
    assert plots.balanced_lines("a\tb\nc " * 20, 30)[0].startswith("a b c a b c")  # other spaces wrap as spaces
    two = np.array(["0", "1"])
    assert plots.confusion_figure(np.repeat(two, 3), np.roll(np.repeat(two, 3), 1), two, "")._suptitle.get_text() == (
        "most confused: true 0 predicted as 1 (1×)")


def test_a_title_of_wide_letters_is_wrapped_until_it_fits_the_figure():
    classes = np.array(["M" * 26 + "1", "M" * 26 + "2", "c", "d"])
    y = np.repeat(classes, 5)
    fig = plots.confusion_figure(y, np.roll(y, 1), classes, "t · knn · OOF accuracy 1.00%")
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and fig._suptitle.get_text().endswith("\npredicted as d (1×)")
    short = np.array(["a", "b", "c", "d"])
    wide = " ".join(["W" * 14] * 6)
    fig = plots.confusion_figure(np.repeat(short, 5), np.roll(np.repeat(short, 5), 1), short, wide)
    assert fig._suptitle.get_text().endswith("\nmost confused: true a predicted as d (1×)")  # its own width


def test_a_title_of_a_thousand_letters_is_cut_to_four_lines():
    two = np.array(["0", "1"])
    fig = plots.confusion_figure(np.repeat(two, 3), np.roll(np.repeat(two, 3), 1), two, "word " * 200 + "97.5%")
    lines = fig._suptitle.get_text().splitlines()  # it raised 'bottom cannot be >= top' in subplots_adjust
    assert len(lines) == 5 and lines[2].endswith("…") and lines[3].endswith("97.5%")  # the score stays
    assert lines[4] == "most confused: true 0 predicted as 1 (1×)"


def test_the_title_of_many_classes_stays_above_the_matrix():
    classes = np.array([f"Class_{i}" for i in range(40)])
    y = np.repeat(classes, 3)
    fig = plots.confusion_figure(y, np.roll(y, 1), classes, "otto-group-product-classification-challenge · lgbm · "
                                 "OOF log loss 0.4523 · accuracy 81.20%")
    renderer = fig.canvas.get_renderer()
    assert fig.axes[0].get_window_extent(renderer).y1 < fig._suptitle.get_window_extent(renderer).y0


def test_class_names_with_dollars_are_text_and_names_alike_at_the_start_stay_apart(tmp_path):
    classes = np.array(["tier {$1}", "$50k-$100k", "Department of Education 11", "Department of Education 12"])
    y = np.repeat(classes, 5)
    fig = plots.confusion_figure(y, np.roll(y, 3), classes, "money · sk-logistic")
    fig.canvas.draw()  # "tier {$1}" as TeX stopped kc train after the fit, and the run was lost
    shown = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert shown[:2] == ["tier {$1}", "$50k-$100k"] and len(set(shown)) == 4
    assert shown[3] == "Department …Education 12"
    plots.confusion_matrix(y, np.roll(y, 3), classes, tmp_path / "m.png", "money")
    alike = np.array([f"Department {i} of Education and Skills" for i in (1, 11, 21)])  # one cut for all three
    fig = plots.confusion_figure(np.repeat(alike, 2), np.roll(np.repeat(alike, 2), 1), alike, "departments")
    shown = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(set(shown)) == 3 and max(map(len, shown)) <= 24
    credit = np.array([f"Does not meet the credit policy. Status: {s} - reviewed by underwriting team"
                       for s in ("Fully Paid", "Charged Off")])  # cut longer until apart, they ran off the figure
    loans = plots.confusion_figure(np.repeat(credit, 2), np.roll(np.repeat(credit, 2), 1), credit, "loans")
    ticks = loans.axes[0].get_yticklabels()
    assert [t.get_text()[:12] for t in ticks] == ["…Fully Paid ", "…Charged Off"]
    loans.canvas.draw()
    regions = ["Department of Education and Skills - North Region", "Department of Education and Skills - South Region",
               "Department of Employment and Skills - South Region", "Other"]  # North and South: both read 'Education'
    assert plots.cut_apart(regions) == ["Department …North Region", "…South Region", "…Employment and Skills …",
                                        "Other"]
    assert all(t.get_window_extent().x0 >= 0 for t in ticks)
    assert f"true {shown[0]} predicted as {shown[2]} (1×)" in fig._suptitle.get_text().replace("\n", " ")
    two = plots.confusion_figure(np.array(["died", "survived"]), np.array(["died", "died"]),
                                 np.array(["died", "survived"]), "titanic")
    assert [t.get_rotation() for t in two.axes[0].get_xticklabels()] == [0, 0]  # two short names fit level
