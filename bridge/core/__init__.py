"""The core: jobs, their journal, and the service that runs them."""
