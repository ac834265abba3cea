CREATE TABLE `agents` (
	`cluster` text NOT NULL,
	`agent_id` text NOT NULL,
	`version` text DEFAULT '' NOT NULL,
	`mode` text DEFAULT 'local' NOT NULL,
	`cycle_ms` integer,
	`last_seen_at` integer NOT NULL,
	PRIMARY KEY(`cluster`, `agent_id`)
);
--> statement-breakpoint
CREATE TABLE `clusters` (
	`name` text PRIMARY KEY NOT NULL,
	`config` text NOT NULL,
	`inventory` text,
	`inventory_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `grants` (
	`user` text NOT NULL,
	`cluster` text NOT NULL,
	`partitions` text NOT NULL,
	PRIMARY KEY(`user`, `cluster`)
);
--> statement-breakpoint
CREATE TABLE `job_events` (
	`job_id` text NOT NULL,
	`seq` integer NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`type` text NOT NULL,
	`state` text,
	`detail` text,
	PRIMARY KEY(`job_id`, `seq`)
);
--> statement-breakpoint
CREATE TABLE `job_logs` (
	`job_id` text NOT NULL,
	`stream` text NOT NULL,
	`offset` integer NOT NULL,
	`data` blob NOT NULL,
	PRIMARY KEY(`job_id`, `stream`, `offset`)
);
--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`name` text NOT NULL,
	`state` text NOT NULL,
	`prev_state` text,
	`reason` text,
	`code` text,
	`cluster` text NOT NULL,
	`partition` text,
	`attempt` integer DEFAULT 1 NOT NULL,
	`epoch` integer DEFAULT 0 NOT NULL,
	`lease_owner` text,
	`lease_expires_at` integer,
	`claim_token` text,
	`run_after` integer DEFAULT 0 NOT NULL,
	`slurm_job_id` text,
	`exit_code` integer,
	`signal` integer,
	`cancel_requested` integer DEFAULT false NOT NULL,
	`spec` text NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`result` text,
	`script` text,
	`idempotency_key` text,
	`spec_hash` text,
	`last_seq` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `jobs_owner_id` ON `jobs` (`owner`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_claim` ON `jobs` (`cluster`,`state`,`run_after`);--> statement-breakpoint
CREATE INDEX `jobs_lease_owner` ON `jobs` (`lease_owner`);--> statement-breakpoint
CREATE INDEX `jobs_claim_token` ON `jobs` (`claim_token`);--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency` ON `jobs` (`owner`,`idempotency_key`) WHERE idempotency_key IS NOT NULL;--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`kind` text NOT NULL,
	`user` text,
	`cluster` text,
	`label` text DEFAULT '' NOT NULL,
	`prefix` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	`revoked_at` integer,
	`last_used_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tokens_hash` ON `tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `users` (
	`name` text PRIMARY KEY NOT NULL,
	`admin` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL
);
