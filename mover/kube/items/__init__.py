"""What a backup or restore does to each object: Velero's item collector and item actions."""
