      *****************************************************************
      * VARIABLE-LENGTH TEST RECORD (OCCURS DEPENDING ON), WRITTEN AND
      * READ BY ODO.CBL AS A GNUCOBOL VARIABLE RECORD SEQUENTIAL FILE.
      *****************************************************************
       01  ODO-REC.
           05  O-ACCOUNT           PIC X(8).
           05  O-COUNT             PIC 9(2).
           05  O-ENTRY             OCCURS 0 TO 5 TIMES
                                   DEPENDING ON O-COUNT.
               10  O-REF           PIC X(3).
               10  O-AMT           PIC S9(5)V99 COMP-3.
