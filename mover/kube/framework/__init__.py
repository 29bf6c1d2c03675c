"""The controller framework: API client, informers, work queues, controllers, status writes."""
