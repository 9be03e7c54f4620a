CREATE TABLE `billing_events` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text,
	`type` text NOT NULL,
	`outcome` text NOT NULL,
	`plan_status` text,
	`object_id` text,
	`object_status` text,
	`customer_id` text,
	`subscription_id` text,
	`amount` integer,
	`currency` text,
	`livemode` integer DEFAULT 0 NOT NULL,
	`event_created_at` integer NOT NULL,
	`received_at` integer NOT NULL,
	`claim` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `billing_events_tenant_idx` ON `billing_events` (`tenant_id`,`event_created_at`);--> statement-breakpoint
CREATE INDEX `billing_events_received_idx` ON `billing_events` (`received_at`);--> statement-breakpoint
ALTER TABLE `tenants` ADD `stripe_customer_id` text;--> statement-breakpoint
ALTER TABLE `tenants` ADD `stripe_subscription_id` text;--> statement-breakpoint
ALTER TABLE `tenants` ADD `plan_period_end` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `plan_event_at` integer;--> statement-breakpoint
ALTER TABLE `tenants` ADD `plan_event_id` text;--> statement-breakpoint
CREATE INDEX `tenants_stripe_customer_idx` ON `tenants` (`stripe_customer_id`);--> statement-breakpoint
CREATE INDEX `tenants_stripe_subscription_idx` ON `tenants` (`stripe_subscription_id`);