"""songmill: a production line for AI-generated songs.

See DESIGN.md for the map. The engine never imports Airflow: every stage is a plain
function from input artifacts and parameters to output artifacts.
"""

__version__ = "0.1.0"
