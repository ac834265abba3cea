DROP INDEX `jobs_claim`;--> statement-breakpoint
CREATE INDEX `jobs_claim_queue` ON `jobs` (`cluster`,`state`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_claim_expired` ON `jobs` (`cluster`,`lease_expires_at`);