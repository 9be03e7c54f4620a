CREATE TABLE `agent_health` (
	`tenant_id` text NOT NULL,
	`day` text NOT NULL,
	`outcome` text NOT NULL,
	`reason` text NOT NULL,
	`count` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `day`, `outcome`, `reason`)
);
--> statement-breakpoint
CREATE TABLE `agent_health_keys` (
	`key` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `agent_health_keys_created_idx` ON `agent_health_keys` (`created_at`);--> statement-breakpoint
CREATE TABLE `ai_usage` (
	`tenant_id` text NOT NULL,
	`day` text NOT NULL,
	`calls` integer DEFAULT 0 NOT NULL,
	`tokens` real DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `day`)
);
--> statement-breakpoint
CREATE TABLE `knowledge_entries` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`question` text NOT NULL,
	`answer` text NOT NULL,
	`position` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `knowledge_tenant_idx` ON `knowledge_entries` (`tenant_id`,`position`);--> statement-breakpoint
ALTER TABLE `conversations` ADD `special_category` integer DEFAULT 0 NOT NULL;