"""What the model is called with: shapes inferred or declared (:mod:`.shapes`), real batches
(:mod:`.batches`), and calling the model and reading its loss (:mod:`.calling`)."""
