"""IAM policy evaluation and the forensnap templates, for the local AWS world."""
