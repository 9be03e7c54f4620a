CREATE TABLE `campaign_recipients` (
	`campaign_id` text NOT NULL,
	`position` integer NOT NULL,
	`subject_hash` text NOT NULL,
	`decision` text NOT NULL,
	`detail` text,
	`conversation_id` text,
	`message_id` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`campaign_id`, `position`),
	FOREIGN KEY (`campaign_id`) REFERENCES `campaigns`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `campaign_recipients_subject_unique` ON `campaign_recipients` (`campaign_id`,`subject_hash`);--> statement-breakpoint
CREATE INDEX `campaign_recipients_decision_idx` ON `campaign_recipients` (`campaign_id`,`decision`);--> statement-breakpoint
CREATE TABLE `campaigns` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`purpose` text NOT NULL,
	`channel_id` text,
	`locale` text NOT NULL,
	`template` text NOT NULL,
	`next_position` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `campaigns_tenant_idx` ON `campaigns` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `consents` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`purpose` text NOT NULL,
	`status` text NOT NULL,
	`method` text NOT NULL,
	`notice_id` text,
	`evidence_message_id` text,
	`evidence_ip` text,
	`channel_id` text,
	`expires_at` integer,
	`actor_type` text NOT NULL,
	`actor_id` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `consents_id_unique` ON `consents` (`id`);--> statement-breakpoint
CREATE INDEX `consents_subject_idx` ON `consents` (`tenant_id`,`subject_hash`,`purpose`,`seq`);--> statement-breakpoint
CREATE INDEX `consents_tenant_idx` ON `consents` (`tenant_id`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `consents_keyword_unique` ON `consents` (`tenant_id`,`channel_id`,`evidence_message_id`,`purpose`);--> statement-breakpoint
CREATE TABLE `deletion_log` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`target_type` text NOT NULL,
	`target_id` text NOT NULL,
	`category` text NOT NULL,
	`reason` text NOT NULL,
	`subject_hash` text,
	`deleted_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `deletion_log_tenant_idx` ON `deletion_log` (`tenant_id`,`deleted_at`);--> statement-breakpoint
CREATE TABLE `notices` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`key` text NOT NULL,
	`purposes` text NOT NULL,
	`kind` text NOT NULL,
	`locale` text NOT NULL,
	`version` integer NOT NULL,
	`text` text NOT NULL,
	`sha256` text NOT NULL,
	`source` text NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `notices_version_unique` ON `notices` (`tenant_id`,`key`,`locale`,`version`);--> statement-breakpoint
CREATE INDEX `notices_tenant_idx` ON `notices` (`tenant_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `recordings` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`conversation_id` text NOT NULL,
	`status` text NOT NULL,
	`participant_hashes` text NOT NULL,
	`consent_ids` text NOT NULL,
	`object_key` text,
	`data_key` text,
	`data_key_id` text,
	`content_type` text,
	`size` integer,
	`started_at` integer NOT NULL,
	`uploaded_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `recordings_conversation_idx` ON `recordings` (`tenant_id`,`conversation_id`,`started_at`);--> statement-breakpoint
CREATE TABLE `rpo_numbers` (
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	PRIMARY KEY(`tenant_id`, `subject_hash`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `rpo_registers` (
	`tenant_id` text PRIMARY KEY NOT NULL,
	`consulted_at` integer NOT NULL,
	`uploaded_at` integer NOT NULL,
	`number_count` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `subject_profiles` (
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`birth_date` text NOT NULL,
	`birth_date_source` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `subject_hash`),
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `voice_models` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`subject_hash` text NOT NULL,
	`name` text NOT NULL,
	`status` text NOT NULL,
	`consent_id` text NOT NULL,
	`expires_at` integer,
	`metadata` text NOT NULL,
	`object_key` text NOT NULL,
	`data_key` text NOT NULL,
	`data_key_id` text NOT NULL,
	`content_type` text NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `voice_models_subject_idx` ON `voice_models` (`tenant_id`,`subject_hash`);--> statement-breakpoint
CREATE INDEX `voice_models_tenant_idx` ON `voice_models` (`tenant_id`,`created_at`);--> statement-breakpoint
-- The consent log is append-only (withdrawing is a new entry). Erasing a subject (issue 5) needs a controlled path, not an UPDATE/DELETE.
CREATE TRIGGER `consents_no_update` BEFORE UPDATE ON `consents`
BEGIN
	SELECT RAISE(ABORT, 'consents is append-only');
END;--> statement-breakpoint
CREATE TRIGGER `consents_no_delete` BEFORE DELETE ON `consents`
BEGIN
	SELECT RAISE(ABORT, 'consents is append-only');
END;--> statement-breakpoint
-- INSERT OR REPLACE deletes the row it collides with without firing DELETE triggers: refuse any insert that would.
CREATE TRIGGER `consents_no_replace` BEFORE INSERT ON `consents`
WHEN EXISTS (SELECT 1 FROM `consents` WHERE `seq` = NEW.`seq` OR `id` = NEW.`id`)
BEGIN
	SELECT RAISE(ABORT, 'consents is append-only');
END;--> statement-breakpoint
-- A second entry for the same channel message and purpose (a retried keyword) is dropped, never replaces the first.
CREATE TRIGGER `consents_keyword_once` BEFORE INSERT ON `consents`
WHEN NEW.`channel_id` IS NOT NULL AND NEW.`evidence_message_id` IS NOT NULL AND EXISTS (
	SELECT 1 FROM `consents` WHERE `tenant_id` = NEW.`tenant_id` AND `channel_id` = NEW.`channel_id`
	AND `evidence_message_id` = NEW.`evidence_message_id` AND `purpose` = NEW.`purpose` AND `id` <> NEW.`id` AND `seq` <> NEW.`seq`)
BEGIN
	SELECT RAISE(IGNORE);
END;--> statement-breakpoint
-- Notice texts are evidence of what people were shown: a version never changes; a new text is a new version.
CREATE TRIGGER `notices_no_update` BEFORE UPDATE ON `notices`
BEGIN
	SELECT RAISE(ABORT, 'notices are immutable');
END;--> statement-breakpoint
CREATE TRIGGER `notices_no_delete` BEFORE DELETE ON `notices`
BEGIN
	SELECT RAISE(ABORT, 'notices are immutable');
END;--> statement-breakpoint
CREATE TRIGGER `notices_no_replace` BEFORE INSERT ON `notices`
WHEN EXISTS (SELECT 1 FROM `notices` WHERE `id` = NEW.`id`)
BEGIN
	SELECT RAISE(ABORT, 'notices are immutable');
END;--> statement-breakpoint
-- Seeding the defaults twice, or two versions racing for the same number: the second insert is dropped.
CREATE TRIGGER `notices_version_once` BEFORE INSERT ON `notices`
WHEN EXISTS (SELECT 1 FROM `notices` WHERE `tenant_id` = NEW.`tenant_id` AND `key` = NEW.`key` AND `locale` = NEW.`locale` AND `version` = NEW.`version` AND `id` <> NEW.`id`)
BEGIN
	SELECT RAISE(IGNORE);
END;
