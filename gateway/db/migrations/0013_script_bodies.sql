CREATE TABLE `script_bodies` (
	`sha256` text PRIMARY KEY NOT NULL,
	`body` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `jobs` ADD `script_body` text;