CREATE TABLE `webhook_deliveries` (
	`webhook_id` text NOT NULL,
	`cursor` integer NOT NULL,
	`job_id` text NOT NULL,
	`seq` integer NOT NULL,
	`type` text NOT NULL,
	`body` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_status` integer,
	`last_error` text,
	`next_at` integer,
	`delivered_at` integer,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`webhook_id`, `cursor`)
);
--> statement-breakpoint
CREATE INDEX `webhook_deliveries_pending` ON `webhook_deliveries` (`webhook_id`,`cursor`) WHERE delivered_at IS NULL;--> statement-breakpoint
CREATE TABLE `webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`owner` text NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`scope` text,
	`all_users` integer DEFAULT false NOT NULL,
	`allow_private` integer DEFAULT false NOT NULL,
	`secret` text NOT NULL,
	`cursor` integer DEFAULT 0 NOT NULL,
	`consecutive_failures` integer DEFAULT 0 NOT NULL,
	`failing_since` integer,
	`retry_at` integer DEFAULT 0 NOT NULL,
	`lease_until` integer DEFAULT 0 NOT NULL,
	`disabled_at` integer,
	`disabled_reason` text,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `webhooks_owner_id` ON `webhooks` (`owner`,`id`);--> statement-breakpoint
CREATE INDEX `webhooks_enabled` ON `webhooks` (`id`) WHERE disabled_at IS NULL;