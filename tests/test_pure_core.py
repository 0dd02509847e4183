import subprocess
import sys


def test_pure_core_imports_no_heavy_or_io_libraries():
    code = ("import sys, vidbatch, vidbatch.planner, vidbatch.pricing, vidbatch.ledger, vidbatch.runs, "
            "vidbatch.report, vidbatch.earmarks, vidbatch.money, vidbatch.catalog, vidbatch.policy, vidbatch.qa, "
            "vidbatch.storyboards, "
            "vidbatch.report_html\n"
            "heavy = [m for m in ('prefect', 'torch', 'diffusers', 'boto3', 'openai', 'ffmpeg') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
