-- Run once by the postgres image on first start. The services would create their
-- databases themselves; creating them here keeps the compose set-up explicit.
CREATE DATABASE dtp;
CREATE DATABASE webdb;
