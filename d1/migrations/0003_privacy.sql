CREATE TABLE `attachments` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`conversation_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`category` text NOT NULL,
	`r2_key` text NOT NULL,
	`content_type` text NOT NULL,
	`size` integer NOT NULL,
	`key_id` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `attachments_conversation_idx` ON `attachments` (`tenant_id`,`conversation_id`);--> statement-breakpoint
CREATE INDEX `attachments_subject_idx` ON `attachments` (`tenant_id`,`subject_hash`);--> statement-breakpoint
CREATE INDEX `attachments_created_idx` ON `attachments` (`tenant_id`,`category`,`created_at`);--> statement-breakpoint
CREATE TABLE `audit_chain` (
	`audit_id` integer PRIMARY KEY NOT NULL,
	`tenant_id` text,
	`prev_hash` text NOT NULL,
	`hash` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `backups` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`r2_key` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `backups_tenant_idx` ON `backups` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `backups_expiry_idx` ON `backups` (`expires_at`);--> statement-breakpoint
CREATE TABLE `dsr_requests` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`type` text NOT NULL,
	`status` text NOT NULL,
	`subject_hash` text NOT NULL,
	`subject_sealed` text,
	`verification_method` text NOT NULL,
	`verification_code_hash` text,
	`verification_attempts` integer DEFAULT 0 NOT NULL,
	`details` text,
	`received_at` integer NOT NULL,
	`due_at` integer NOT NULL,
	`extension_reason` text,
	`verified_at` integer,
	`completed_at` integer,
	`rejected_reason` text,
	`result` text
);
--> statement-breakpoint
CREATE INDEX `dsr_tenant_idx` ON `dsr_requests` (`tenant_id`,`status`,`due_at`);--> statement-breakpoint
CREATE INDEX `dsr_subject_idx` ON `dsr_requests` (`tenant_id`,`subject_hash`);--> statement-breakpoint
CREATE TABLE `legal_holds` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`scope` text NOT NULL,
	`target` text,
	`reason` text NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text,
	`released_at` integer,
	`released_by` text
);
--> statement-breakpoint
CREATE INDEX `legal_holds_active_idx` ON `legal_holds` (`tenant_id`,`released_at`,`scope`,`target`);--> statement-breakpoint
CREATE TABLE `retention_policies` (
	`tenant_id` text NOT NULL,
	`category` text NOT NULL,
	`days` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`updated_by` text,
	PRIMARY KEY(`tenant_id`, `category`)
);
--> statement-breakpoint
CREATE TABLE `subject_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`wrapped_key` text,
	`created_at` integer NOT NULL,
	`destroyed_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `subject_keys_live_unique` ON `subject_keys` (`tenant_id`,`subject_hash`) WHERE destroyed_at IS NULL;--> statement-breakpoint
CREATE INDEX `subject_keys_subject_idx` ON `subject_keys` (`tenant_id`,`subject_hash`);--> statement-breakpoint
CREATE TABLE `subject_restrictions` (
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`kind` text NOT NULL,
	`dsr_id` text,
	`created_at` integer NOT NULL,
	`lifted_at` integer,
	PRIMARY KEY(`tenant_id`, `subject_hash`, `kind`)
);
--> statement-breakpoint
CREATE TABLE `sweep_state` (
	`name` text PRIMARY KEY NOT NULL,
	`cursor` text,
	`last_run_at` integer,
	`last_deleted` integer DEFAULT 0 NOT NULL
);
