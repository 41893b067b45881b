"""The bench table: a detector's post-processing p50 beside its invoke p50."""
from deploy.measure import table


def _doc(predictions):
    run = {"threads": 1, "xnnpack": True, "p50_us": 800.0, "p99_us": 900.0}
    result = {"variant": "int8", "status": "ok", "runs": [run], "model": {"ops_delegated": 5, "ops_total": 5},
              "memory": {"peak_rss_mb": 40.0}, "accuracy": None}
    if predictions is not None:
        result["predictions"] = predictions
    return {"results": [result], "runtime": {"name": "ai-edge-litert", "version": "2.3.0"}, "deploy": {}}


def test_a_task_model_shows_its_post_processing_median():
    preds = [{"postprocess_us": v} for v in (30.0, 10.0, 50.0, 20.0)]
    lines = table.render(_doc(preds)).splitlines()
    header, row = lines[0].split(), lines[1].split()
    assert "post" in header
    # header "post p50 us" is three words: the row's 7th cell is the median of 10, 20, 30, 50
    assert row[6] == "25.0"


def test_a_classifier_has_no_post_processing_column():
    assert "post p50" not in table.render(_doc(None))
