select 2;

	select 3 ;  
-- only a trailing comment
