CREATE TABLE `job_labels` (
	`job_id` text NOT NULL,
	`owner` text NOT NULL,
	`key` text NOT NULL,
	`value` text NOT NULL,
	PRIMARY KEY(`owner`, `key`, `value`, `job_id`)
);
--> statement-breakpoint
CREATE INDEX `job_labels_key_value` ON `job_labels` (`key`,`value`,`job_id`);--> statement-breakpoint
DROP INDEX `jobs_owner_state`;--> statement-breakpoint
DROP INDEX `jobs_claim_expired`;--> statement-breakpoint
CREATE INDEX `jobs_owner_state_id` ON `jobs` (`owner`,`state`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_owner_cluster_id` ON `jobs` (`owner`,`cluster`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_state_id` ON `jobs` (`state`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_cluster_id` ON `jobs` (`cluster`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_held_expiry` ON `jobs` (`cluster`,`lease_expires_at`) WHERE state IN ('leased','submitted','pending','running');--> statement-breakpoint
CREATE INDEX `jobs_cancel_orders` ON `jobs` (`cluster`,`lease_owner`) WHERE cancel_requested = 1 AND state IN ('leased','submitted','pending','running');--> statement-breakpoint
INSERT OR IGNORE INTO `job_labels` (`job_id`, `owner`, `key`, `value`)
  SELECT `jobs`.`id`, `jobs`.`owner`, `l`.`key`, `l`.`value`
  FROM `jobs`, json_each(CASE WHEN json_valid(`jobs`.`labels`) THEN `jobs`.`labels` ELSE '{}' END) AS `l`
  WHERE `l`.`type` = 'text' AND typeof(`l`.`key`) = 'text';

