"""What a run did, for people: ML Metadata read one way (``run_record``), the outcome line, the
per-component console lines and the HTML report with its figures. Nothing here runs the pipeline."""
