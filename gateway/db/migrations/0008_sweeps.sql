CREATE TABLE `sweeps` (
	`id` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`name` text NOT NULL,
	`max_parallel` integer,
	`total` integer NOT NULL,
	`idempotency_key` text,
	`spec_hash` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `sweeps_owner_id` ON `sweeps` (`owner`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `sweeps_idempotency` ON `sweeps` (`owner`,`idempotency_key`) WHERE idempotency_key IS NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `sweep_id` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `sweep_index` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `batch_group` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `batch_id` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `batch_index` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `batch_size` integer;--> statement-breakpoint
CREATE INDEX `jobs_sweep_elements` ON `jobs` (`sweep_id`,`sweep_index`) WHERE sweep_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_sweep_state` ON `jobs` (`sweep_id`,`state`,`updated_at`) WHERE sweep_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_sweep_group` ON `jobs` (`sweep_id`,`batch_group`,`state`,`sweep_index`) WHERE batch_group IS NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_batch` ON `jobs` (`batch_id`,`state`) WHERE batch_id IS NOT NULL;