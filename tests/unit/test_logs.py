

def test_logs_are_quiet_by_default_and_verbose_on_request(capsys):
    """Great Expectations' and MLflow's INFO chatter stays out of a run's output unless asked for."""
    import logging

    import pytest

    from pipeline.logs import NOISY, configure, level_from_env

    configure(*level_from_env({}))
    assert logging.getLogger("pipeline").getEffectiveLevel() == logging.INFO
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in NOISY)
    configure(*level_from_env({"DRIFTLINE_VERBOSE": "1"}))
    assert logging.getLogger("great_expectations").getEffectiveLevel() == logging.INFO
    assert level_from_env({"DRIFTLINE_LOG_LEVEL": "debug"}) == (logging.DEBUG, True)
    with pytest.raises(ValueError, match="DRIFTLINE_LOG_LEVEL"):
        level_from_env({"DRIFTLINE_LOG_LEVEL": "chatty"})
    configure(*level_from_env({}))


def test_verbose_and_quiet_flags_parse_before_or_after_the_command():
    from pipeline.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["status", "credit_default", "--verbose"]).verbose is True
    assert parser.parse_args(["-q", "status", "credit_default"]).quiet is True
    assert parser.parse_args(["status", "credit_default"]).verbose is False
