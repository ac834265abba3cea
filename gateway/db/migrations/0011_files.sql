CREATE TABLE `blobs` (
	`sha256` text PRIMARY KEY NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `job_files` (
	`job_id` text NOT NULL,
	`path` text NOT NULL,
	`sha256` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `path`)
);
--> statement-breakpoint
CREATE INDEX `job_files_sha256` ON `job_files` (`sha256`);--> statement-breakpoint
CREATE TABLE `job_inputs` (
	`job_id` text NOT NULL,
	`path` text NOT NULL,
	`sha256` text NOT NULL,
	PRIMARY KEY(`job_id`, `path`)
);
--> statement-breakpoint
CREATE INDEX `job_inputs_sha256` ON `job_inputs` (`sha256`);--> statement-breakpoint
CREATE TABLE `uploads` (
	`owner` text NOT NULL,
	`sha256` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`owner`, `sha256`)
);
--> statement-breakpoint
CREATE INDEX `uploads_sha256` ON `uploads` (`sha256`);