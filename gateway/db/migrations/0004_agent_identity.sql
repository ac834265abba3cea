ALTER TABLE `agents` ADD `stopped_at` integer;--> statement-breakpoint
ALTER TABLE `agents` ADD `user` text;--> statement-breakpoint
ALTER TABLE `agents` ADD `serves` text;--> statement-breakpoint
CREATE INDEX `jobs_claim_owner` ON `jobs` (`cluster`,`owner`,`state`,`id`);