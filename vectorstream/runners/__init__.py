"""Runner presets and the Java pieces they need, fetched with Maven."""
