CREATE TABLE `consent_evidence` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`ip` text NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
-- Evidence IPs written before this table existed are copied here, where a MASTER_KEY rotation can
-- re-wrap them; the log's own copy stays as it was (append-only) and is no longer read once copied.
INSERT INTO `consent_evidence` (`id`, `tenant_id`, `ip`)
SELECT `id`, `tenant_id`, `evidence_ip` FROM `consents` WHERE `evidence_ip` IS NOT NULL;
