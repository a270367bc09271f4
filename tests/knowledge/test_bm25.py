"""BM25: the tokenizer, Snowball stemming for English and Russian, statistics, vectors and persistence."""

import pytest

from knowledge.bm25 import (
    K1,
    B,
    BM25Stats,
    SparseVector,
    analyze,
    bm25_document_vector,
    bm25_fit,
    bm25_query_vector,
    bm25_stats_load,
    bm25_stats_save,
    tokenize,
)
from knowledge.models import BM25Index


def test_tokenizer_splits_mixed_latin_and_cyrillic_on_everything_but_letters_and_digits():
    text = "Уборка квартир — от 4500₽/м²! Wi-Fi, 24/7; e-mail: info@alpha.de (Ёлки_палки) COVID19"

    assert tokenize(text) == [
        "уборка", "квартир", "от", "4500", "м2", "wi", "fi", "24", "7", "e", "mail", "info", "alpha", "de",
        "елки", "палки", "covid19",
    ]  # fmt: skip


def test_decomposed_and_compatibility_characters_do_not_split_words():
    decomposed = "Мои\u0306ка окон"  # и + combining breve: how some sources write й

    assert analyze(decomposed, "ru", stem=False) == ["мойка", "окон"]


def test_analyze_drops_one_character_tokens():
    assert analyze("A window, 2 doors, 1 m glass", "en", stem=False) == ["window", "doors", "glass"]


def test_english_stop_words_are_dropped_but_question_words_negations_and_russian_words_stay():
    # "you", "for", "do" matched the longest chunk of a small site first (the retrieval benchmark).
    assert analyze("What do you charge for an hour with a tutor?", "en") == ["what", "charg", "hour", "tutor"]
    assert analyze("Where is it not allowed?", "en", stem=False) == ["where", "not", "allowed"]
    assert analyze("Цена за метр, если не после ремонта", "ru", stem=False) == [
        "цена", "за", "метр", "если", "не", "после", "ремонта",
    ]  # fmt: skip
    assert analyze("The team in our office", "ru") == analyze("team office", "ru")


def test_russian_inflections_meet_after_stemming():
    forms = analyze("уборка уборки уборку уборкой уборке", "ru")

    assert len(set(forms)) == 1
    assert analyze("Генеральная уборка квартир", "ru") == analyze("генеральную уборку квартиры", "ru")


def test_english_inflections_meet_after_stemming():
    assert len(set(analyze("cleaning cleaned cleans clean", "english"))) == 1
    assert analyze("Windows cleaned", "en") == analyze("window cleaning", "en")


def test_each_script_takes_its_own_stemmer():
    # A Russian page naming services in English, and an English page quoting Russian words.
    assert analyze("мойка windows", "ru") == analyze("мойки window", "ru")
    assert analyze("cleaning уборки", "en") == analyze("cleaned уборка", "en")


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported BM25 language 'de'"):
        analyze("Fensterreinigung", "de")


def test_fit_counts_the_corpus_and_keeps_term_ids_stable_across_refits():
    first = bm25_fit([["window", "clean"], ["window", "price", "window"]], language="en")

    assert first.vocabulary == {"window": 0, "clean": 1, "price": 2}
    assert first.doc_freq == {"window": 2, "clean": 1, "price": 1}
    assert (first.num_docs, first.avg_doc_len, first.language) == (2, 2.5, "en")

    second = bm25_fit([["price", "balcony"], ["carpet"]], language="english", previous=first)

    assert second.vocabulary == {"window": 0, "clean": 1, "price": 2, "balcony": 3, "carpet": 4}
    assert second.doc_freq == {"price": 1, "balcony": 1, "carpet": 1}  # the current corpus only
    assert (second.num_docs, second.avg_doc_len) == (2, 1.5)
    assert first.vocabulary == {"window": 0, "clean": 1, "price": 2}  # the previous statistics are untouched


def test_fit_of_an_empty_corpus():
    stats = bm25_fit([], language="ru")

    assert stats == BM25Stats(language="ru", vocabulary={}, doc_freq={}, num_docs=0, avg_doc_len=0.0)


def test_document_vector_is_saturated_length_normalised_term_frequency():
    stats = bm25_fit([["window", "window", "clean", "price"], ["carpet", "price"]], language="en")  # avgdl 3

    vector = bm25_document_vector(["price", "window", "window", "unknown", "clean"], stats)

    # dl = 5, avgdl = 3: norm = 1.5 * (1 - 0.75 + 0.75 * 5 / 3) = 2.25
    # window: tf 2 -> 2 * 2.5 / (2 + 2.25) = 1.176470...; clean and price: tf 1 -> 2.5 / 3.25 = 0.769230...
    assert vector.indices == [0, 1, 2]
    assert vector.values == pytest.approx([5 / 4.25, 2.5 / 3.25, 2.5 / 3.25])
    norm = K1 * (1 - B + B * 5 / 3)
    assert vector.values[0] == pytest.approx(2 * (K1 + 1) / (2 + norm))


def test_document_vector_of_unknown_terms_is_empty():
    stats = bm25_fit([["window"]], language="en")

    assert bm25_document_vector(["carpet"], stats) == SparseVector(indices=[], values=[])
    assert bm25_document_vector([], bm25_fit([], language="en")) == SparseVector(indices=[], values=[])


def test_query_vector_marks_each_distinct_known_term_once():
    stats = bm25_fit([["window", "clean"], ["price", "carpet"]], language="en")

    vector = bm25_query_vector(["price", "window", "price", "unknown"], stats)

    assert vector == SparseVector(indices=[0, 2], values=[1.0, 1.0])


@pytest.mark.django_db
def test_statistics_round_trip_per_project(project_a, project_b):
    russian = bm25_fit([analyze("Генеральная уборка квартир", "ru"), analyze("Мойка окон", "ru")], language="ru")
    english = bm25_fit([["window"]], language="en")

    assert bm25_stats_load(project=project_b) is None
    bm25_stats_save(project=project_b, stats=russian)
    bm25_stats_save(project=project_a, stats=english)

    assert bm25_stats_load(project=project_b) == russian
    assert bm25_stats_load(project=project_a) == english

    refit = bm25_fit([analyze("уборка", "ru")], language="ru", previous=bm25_stats_load(project=project_b))
    bm25_stats_save(project=project_b, stats=refit)

    assert bm25_stats_load(project=project_b) == refit
    assert BM25Index.objects.count() == 2
    assert BM25Index.objects.get(project=project_b).num_docs == 1
