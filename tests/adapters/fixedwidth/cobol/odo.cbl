      *****************************************************************
      * WRITES (MODE W) OR READS AND CHECKS (MODE R) FOUR ODO-REC
      * RECORDS OF 0, 1, 3 AND 5 ENTRIES IN A VARIABLE-LENGTH FILE.
      * ARGUMENT 2 IS THE FILE NAME. ASCII, GNUCOBOL'S OWN FORMAT.
      *****************************************************************
       IDENTIFICATION DIVISION.
       PROGRAM-ID. ODO.
       ENVIRONMENT DIVISION.
       INPUT-OUTPUT SECTION.
       FILE-CONTROL.
           SELECT DATA-FILE ASSIGN TO WS-FILE-NAME
               ORGANIZATION IS RECORD SEQUENTIAL
               FILE STATUS IS WS-STATUS.
       DATA DIVISION.
       FILE SECTION.
       FD  DATA-FILE
           RECORD VARYING FROM 10 TO 50 CHARACTERS
           DEPENDING ON WS-LENGTH.
           COPY "odo.cpy".
       WORKING-STORAGE SECTION.
       01  WS-ARGS                 PIC X(300).
       01  WS-MODE                 PIC X.
       01  WS-FILE-NAME            PIC X(256).
       01  WS-STATUS               PIC XX.
       01  WS-LENGTH               PIC 9(4) COMP.
       01  WS-I                    PIC 99.
       01  WS-REC-NO               PIC 99.
       01  WS-CHECKED              PIC 99 VALUE 0.
       01  WS-EOF                  PIC X VALUE 'N'.
       01  WS-COUNTS               PIC X(4) VALUE "0135".
       01  WS-WANT                 PIC 9.
       01  WS-WANT-AMT             PIC S9(5)V99 COMP-3.
       PROCEDURE DIVISION.
           ACCEPT WS-ARGS FROM COMMAND-LINE
           UNSTRING WS-ARGS DELIMITED BY ALL SPACE
               INTO WS-MODE WS-FILE-NAME
           IF WS-MODE = 'W'
               OPEN OUTPUT DATA-FILE
               PERFORM VARYING WS-REC-NO FROM 1 BY 1
                       UNTIL WS-REC-NO > 4
                   MOVE WS-COUNTS(WS-REC-NO:1) TO WS-WANT
                   MOVE "ACCT0001" TO O-ACCOUNT
                   MOVE WS-WANT TO O-COUNT
                   PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > WS-WANT
                       MOVE "R00" TO O-REF(WS-I)
                       MOVE WS-I(2:1) TO O-REF(WS-I)(3:1)
                       COMPUTE O-AMT(WS-I) = WS-I * -1.25
                   END-PERFORM
                   COMPUTE WS-LENGTH = 10 + 7 * WS-WANT
                   WRITE ODO-REC
               END-PERFORM
               CLOSE DATA-FILE
           ELSE
               OPEN INPUT DATA-FILE
               MOVE 0 TO WS-REC-NO
               PERFORM UNTIL WS-EOF = 'Y'
                   READ DATA-FILE
                       AT END MOVE 'Y' TO WS-EOF
                       NOT AT END PERFORM CHECK-RECORD
                   END-READ
               END-PERFORM
               CLOSE DATA-FILE
               DISPLAY "CHECKED " WS-CHECKED
           END-IF
           STOP RUN.

       CHECK-RECORD.
           ADD 1 TO WS-REC-NO
           MOVE WS-COUNTS(WS-REC-NO:1) TO WS-WANT
           IF O-ACCOUNT NOT = "ACCT0001"
               DISPLAY "MISMATCH " WS-REC-NO " O-ACCOUNT" END-IF
           IF O-COUNT NOT = WS-WANT
               DISPLAY "MISMATCH " WS-REC-NO " O-COUNT" END-IF
           IF WS-LENGTH NOT = 10 + 7 * WS-WANT
               DISPLAY "MISMATCH " WS-REC-NO " LENGTH " WS-LENGTH END-IF
           PERFORM VARYING WS-I FROM 1 BY 1 UNTIL WS-I > WS-WANT
               IF O-REF(WS-I)(1:2) NOT = "R0"
                  OR O-REF(WS-I)(3:1) NOT = WS-I(2:1)
                   DISPLAY "MISMATCH " WS-REC-NO " O-REF " WS-I END-IF
               COMPUTE WS-WANT-AMT = WS-I * -1.25
               IF O-AMT(WS-I) NOT = WS-WANT-AMT
                   DISPLAY "MISMATCH " WS-REC-NO " O-AMT " WS-I END-IF
           END-PERFORM
           ADD 1 TO WS-CHECKED.
