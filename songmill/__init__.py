"""songmill: a production line for AI-generated songs.

See DESIGN.md for the map. The engine never imports Airflow: every stage is a plain
function from input artifacts and parameters to output artifacts.
"""

import os

__version__ = "0.1.0"

# One math thread per process, as every runner here runs (the CLI, Airflow's tasks, the Celery
# workers): with more threads torch and OpenMP add their sums in another order, and the
# watermarked master comes out different in its last bit — yet a render must give the same bytes
# whichever runner makes it (a delivery is compared by its audio). Read when torch is first
# imported, so it holds wherever songmill is imported before torch; a value already set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
