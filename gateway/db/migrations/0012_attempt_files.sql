PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_job_files` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`path` text NOT NULL,
	`sha256` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `attempt`, `path`)
);
--> statement-breakpoint
-- Rows from before attempts were recorded belong to the attempt their job was at (outputs are
-- uploaded as an attempt ends); a row whose job is gone is the first attempt's.
INSERT INTO `__new_job_files`("job_id", "attempt", "path", "sha256", "size", "created_at") SELECT f."job_id", COALESCE((SELECT j."attempt" FROM `jobs` j WHERE j."id" = f."job_id"), 1), f."path", f."sha256", f."size", f."created_at" FROM `job_files` f;--> statement-breakpoint
DROP TABLE `job_files`;--> statement-breakpoint
ALTER TABLE `__new_job_files` RENAME TO `job_files`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `job_files_sha256` ON `job_files` (`sha256`);--> statement-breakpoint
ALTER TABLE `blobs` ADD `verified_at` integer;--> statement-breakpoint
ALTER TABLE `blobs` ADD `verified_version` text;