import os


def pytest_addoption(parser):
    parser.addoption(
        "--robustness-long",
        action="store_true",
        default=os.environ.get("IMSEQ_ROBUSTNESS", "") == "long",
        help="run the long robustness suite (many more seeded mutations); also IMSEQ_ROBUSTNESS=long",
    )
