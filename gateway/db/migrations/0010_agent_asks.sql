CREATE TABLE `agent_asks` (
	`id` text PRIMARY KEY NOT NULL,
	`cluster` text NOT NULL,
	`owner` text NOT NULL,
	`kind` text NOT NULL,
	`body` text NOT NULL,
	`taken_by` text,
	`answer` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `agent_asks_open` ON `agent_asks` (`cluster`,`created_at`) WHERE taken_by IS NULL;--> statement-breakpoint
CREATE INDEX `agent_asks_expiry` ON `agent_asks` (`expires_at`);