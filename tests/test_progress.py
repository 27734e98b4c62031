import time

from tokenshift.core import progress


def test_bars_write_to_the_runners_stream_not_the_notebook(tmp_path, monkeypatch, capsys):
    stream = tmp_path / "progress.log"
    monkeypatch.setenv(progress.ENV, str(stream))
    for _ in progress.bar(range(3), desc="RL dapo", unit="step", mininterval=0):
        pass
    assert capsys.readouterr() == ("", "")  # nothing in the cell's output
    text = stream.read_text()
    assert "RL dapo: 3/3 steps" in text and "ETA" in text


def test_the_relay_prints_each_bars_progress_and_its_end(tmp_path):
    stream, printed = tmp_path / "progress.log", []
    echo = lambda line, flush: printed.append(line)
    with progress.Relay(stream, prefix="[p] nb |", interval=3600, echo=echo):
        with open(stream, "a") as f:
            f.write("\rsampling: 0/4 units [...]\rsampling: 1/4 units [...]\rsampling: 2/4 units [...]")
            f.flush()
            time.sleep(0.8)
            f.write("\rsampling: 4/4 units [...]\nscoring: 1/9 units [...]")
    assert printed == ["[p] nb | sampling: 0/4 units [...]", "[p] nb | sampling: 4/4 units [...]",
                       "[p] nb | scoring: 1/9 units [...]"]
