DROP TABLE web_tasks;
