"""Marketing contacts at an email marketing provider (SendGrid Marketing Campaigns)."""
